"""One forward of a Qwen2.5-VL policy over prompt ‖ response → per-token log-probs of the response.

Shared by the trained actor and the frozen reference, so both see the same positions, the same
vision tokens and the same temperature as the rollout that produced the tokens.

Every forward runs the vision tower exactly once, whatever the rows hold: the images and videos
of a micro-batch go through it in one call (the tower works per image/frame, so one call over all
of them is the two calls HF would make), and a micro-batch without vision feeds it one dummy
2×2-patch image whose output enters the graph times 0. FSDP2 shards the tower's blocks, so every
worker must all-gather (and in backward reduce-scatter) them the same number of times: without
this a step whose workers got different modalities hangs in a collective. Torch and transformers
only (no verl): bench/gpu_smoke.py runs this on a bare GPU machine.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from videop2r.learner.rows import MULTI_MODAL_KEYS, Rows

_METHOD = "videop2r_logits"


def collate_multi_modal(per_sample: Sequence[Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Concatenate each sample's multimodal tensors along dim 0, in batch order (what HF expects)."""
    merged: dict[str, list[torch.Tensor]] = {}
    for inputs in per_sample:
        for key in MULTI_MODAL_KEYS:
            if key in inputs:
                value = torch.as_tensor(inputs[key])
                merged.setdefault(key, []).append(value.reshape(1) if value.dim() == 0 else value)
    return {key: torch.cat(values, dim=0).to(device) for key, values in merged.items()}


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int, video_token_id: int) -> torch.Tensor:
    """(bs, L) int32: 0 text, 1 image, 2 video — what Qwen2.5-VL's 3-D RoPE index needs."""
    types_ = torch.zeros_like(input_ids, dtype=torch.int32)
    types_[input_ids == image_token_id] = 1
    types_[input_ids == video_token_id] = 2
    return types_


def _vision_once(model: nn.Module, mm: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None,
                                                                          torch.Tensor]:
    """(image features | None, video features | None, all features) from one call of the vision tower."""
    visual = model.model.visual
    vision_config = model.config.vision_config
    merge = int(vision_config.spatial_merge_size)
    pixels, grids = [], []
    for pixel_key, grid_key in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
        if pixel_key in mm:
            pixels.append(mm[pixel_key])
            grids.append(mm[grid_key].long())
    if not pixels:  # nothing to see: a dummy image of merge × merge patches keeps the collectives aligned
        width = int(vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size ** 2)
        pixels = [torch.zeros(merge * merge, width, device=mm.get("_device", torch.device("cpu")))]
        grids = [torch.tensor([[1, merge, merge]], device=pixels[0].device)]
    weight = next(visual.patch_embed.parameters())
    features = visual(torch.cat(pixels).to(weight.device, weight.dtype), grid_thw=torch.cat(grids)).pooler_output
    counts = [int(grid.prod(-1).sum()) // merge ** 2 for grid in grids]
    if "pixel_values" not in mm and "pixel_values_videos" not in mm:
        return None, None, features
    image = features[: counts[0]] if "pixel_values" in mm else None
    video = features[features.shape[0] - counts[-1]:] if "pixel_values_videos" in mm else None
    return image, video, features


def _logits(self: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
            mm: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of the last `logits_to_keep` positions; a method of the model (FSDP2 forward method)."""
    config = self.config
    inner = self.model
    embeds = inner.get_input_embeddings()(input_ids)
    image, video, features = _vision_once(self, {**mm, "_device": input_ids.device})
    if image is None and video is None:
        embeds = embeds + features.sum().to(embeds.dtype) * 0.0
    for token_id, part in ((config.image_token_id, image), (config.video_token_id, video)):
        if part is None:
            continue
        where = (input_ids == token_id).unsqueeze(-1).expand_as(embeds)
        if int(where.sum()) != part.numel():
            raise ValueError(f"{int((input_ids == token_id).sum())} placeholder tokens (id {token_id}) for "
                             f"{part.shape[0]} vision features")
        embeds = embeds.masked_scatter(where, part.to(embeds.dtype))
    grids = {key: mm[key] for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts") if key in mm}
    hidden = inner(
        input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False,
        mm_token_type_ids=mm_token_type_ids(input_ids, config.image_token_id, config.video_token_id), **grids,
    ).last_hidden_state
    return self.lm_head(hidden[:, -logits_to_keep:, :])


def install_forward(model: nn.Module) -> nn.Module:
    """Attach the one-vision-call forward to `model`; after fully_shard, register it with FSDP2 so a call
    unshards the root unit (embeddings, patch embed, merger, lm_head) like `model(...)` does."""
    setattr(model, _METHOD, types.MethodType(_logits, model))
    from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method

    if isinstance(model, FSDPModule):
        register_fsdp_forward_method(model, _METHOD)
    return model


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token], (bs, R), without materialising the (bs, R, vocab) log-softmax twice."""
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of softmax(logits) per position."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def response_log_probs(
    model: nn.Module,
    micro: Any,
    temperature: float,
    with_entropy: bool = False,
    device: torch.device | str = "cpu",
    blocked_token_ids: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropy) of `responses` under `model`, shapes (bs, R), zero on padding.

    The distribution is the one the rollout sampled from: logits / temperature with
    `blocked_token_ids` (vision placeholders the rollout never samples) removed.

    `micro` (`Rows` or a verl DataProto) carries input_ids/attention_mask (bs, P+R),
    responses/response_mask (bs, R) and multimodal inputs per sample. Columns that are padding in
    every row are cut before the forward (left of the prompts, right of the responses) and the
    result is padded back to R. Gradients flow when called outside `torch.no_grad()`.
    """
    rows = Rows.of(micro)
    device = torch.device(device)
    input_ids = rows.tensors["input_ids"]
    attention_mask = rows.tensors["attention_mask"]
    response_mask = rows.tensors["response_mask"]
    bs, response_width = response_mask.shape
    prompt_width = input_ids.shape[1] - response_width

    # cut all-padding columns: prompts are left-padded, responses right-padded
    start = int(attention_mask[:, :prompt_width].any(dim=0).nonzero()[0])
    used = response_mask.any(dim=0).nonzero()
    response_len = int(used[-1]) + 1 if used.numel() else 1
    end = prompt_width + response_len
    ids = input_ids[:, start:end].to(device)
    mask = attention_mask[:, start:end].to(device)
    responses = rows.tensors["responses"][:, :response_len].to(device)

    mm = collate_multi_modal(rows.multi_modal, device)
    forward = getattr(model, _METHOD, None) or types.MethodType(_logits, model)
    logits = forward(ids, mask, response_len + 1, mm)
    # position t predicts token t+1: the last response_len+1 logits minus the final one
    logits = logits[:, :-1, :].float().div(temperature)
    if len(blocked_token_ids):
        # a finite floor keeps entropy's p·logit at 0 for blocked ids (−inf would give NaN)
        logits = logits.index_fill(-1, torch.as_tensor(list(blocked_token_ids), device=logits.device), -1e9)
    log_probs = token_log_probs(logits, responses)
    ent = None
    if with_entropy:  # a metric only: no graph through the (bs, R, vocab) softmax
        with torch.no_grad():
            ent = entropy(logits.detach())

    def widen(values: torch.Tensor) -> torch.Tensor:
        full = values.new_zeros((bs, response_width))
        full[:, :response_len] = values
        return full * response_mask.to(values.device, values.dtype)

    return widen(log_probs), (widen(ent) if ent is not None else None)
