"""One forward of a Qwen2.5-VL policy over prompt ‖ response → per-token log-probs of the response.

Shared by the trained actor and the frozen reference, so both see the same positions, the same
vision tokens and the same temperature as the rollout that produced the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from verl import DataProto
from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits

from videop2r.learner.batch import MULTI_MODAL_KEYS


def collate_multi_modal(per_sample: np.ndarray | list, device: torch.device) -> dict[str, torch.Tensor]:
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
    types = torch.zeros_like(input_ids, dtype=torch.int32)
    types[input_ids == image_token_id] = 1
    types[input_ids == video_token_id] = 2
    return types


def response_log_probs(
    model: nn.Module,
    micro: DataProto,
    temperature: float,
    with_entropy: bool = False,
    device: torch.device | str = "cpu",
    blocked_token_ids: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropy) of `responses` under `model`, shapes (bs, R), zero on padding.

    The distribution is the one the rollout sampled from: logits / temperature with
    `blocked_token_ids` (vision placeholders the rollout never samples) removed.

    `micro` carries input_ids/attention_mask (bs, P+R), responses/response_mask (bs, R) and
    multi_modal_inputs per sample. Columns that are padding in every row are cut before the
    forward (left of the prompts, right of the responses) and the result is padded back to R.
    Gradients flow when called outside `torch.no_grad()`.
    """
    config = model.config
    device = torch.device(device)
    input_ids = micro.batch["input_ids"]
    attention_mask = micro.batch["attention_mask"]
    response_mask = micro.batch["response_mask"]
    bs, response_width = response_mask.shape
    prompt_width = input_ids.shape[1] - response_width

    # cut all-padding columns: prompts are left-padded, responses right-padded
    start = int(attention_mask[:, :prompt_width].any(dim=0).nonzero()[0])
    used = response_mask.any(dim=0).nonzero()
    response_len = int(used[-1]) + 1 if used.numel() else 1
    end = prompt_width + response_len
    ids = input_ids[:, start:end].to(device)
    mask = attention_mask[:, start:end].to(device)
    responses = micro.batch["responses"][:, :response_len].to(device)

    mm = collate_multi_modal(micro.non_tensor_batch["multi_modal_inputs"], device)
    output = model(
        input_ids=ids,
        attention_mask=mask,
        mm_token_type_ids=mm_token_type_ids(ids, config.image_token_id, config.video_token_id),
        logits_to_keep=response_len + 1,
        use_cache=False,
        **mm,
    )
    # position t predicts token t+1: the last response_len+1 logits minus the final one
    logits = output.logits[:, :-1, :].float().div(temperature)
    if len(blocked_token_ids):
        # a finite floor keeps entropy's p·logit at 0 for blocked ids (−inf would give NaN)
        logits = logits.index_fill(-1, torch.as_tensor(list(blocked_token_ids), device=logits.device), -1e9)
    log_probs = logprobs_from_logits(logits, responses)
    entropy = None
    if with_entropy:  # a metric only: no graph through the (bs, R, vocab) softmax
        with torch.no_grad():
            entropy = entropy_from_logits(logits.detach())

    def widen(values: torch.Tensor) -> torch.Tensor:
        full = values.new_zeros((bs, response_width))
        full[:, :response_len] = values
        return full * response_mask.to(values.device, values.dtype)

    return widen(log_probs), (widen(entropy) if entropy is not None else None)
