"""Rollouts → one `DataProto` batch the learner workers can split, pad and forward.

Layout (verl's names, so verl's dispatch/collect and `core_algos` read it as is):

    batch (tensors, first dim = bs)
      prompts            (bs, P)    int64, left-padded with pad_token_id
      responses          (bs, R)    int64, right-padded with pad_token_id
      input_ids          (bs, P+R)  prompts ‖ responses
      attention_mask     (bs, P+R)  int64, 1 on real tokens
      response_mask      (bs, R)    int64, 1 on generated tokens
      rollout_log_probs  (bs, R)    float32, the rollout's log-prob of each token (0 on padding);
                                    present only when every rollout returned them
    non_tensor_batch (numpy arrays, first dim = bs)
      multi_modal_inputs object: dict of tensors per sample (ragged, so not in `batch`):
                         pixel_values_videos (patches, C·T·14·14), video_grid_thw (n_videos, 3),
                         second_per_grid_ts (n_videos,), and/or pixel_values, image_grid_thw
      uid                object: group id (one prompt's G rollouts share it)
      weight_version     int64: weight version the rollout was generated with (-1 = unknown)
    meta_info
      pad_token_id

The driver adds `advantages` (bs, R) (and the workers add `old_log_probs` / `ref_log_prob`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from verl import DataProto

from videop2r.learner.rows import MULTI_MODAL_KEYS  # noqa: F401 - re-exported



class RolloutBatchError(ValueError):
    """A rollout that cannot become a training sample; the message names it."""


@dataclass
class RolloutSample:
    """One generated response with the prompt inputs it was generated from.

    prompt_ids: the prompt's token ids without padding (vision placeholders already expanded);
    response_ids: generated token ids; rollout_log_probs: one per response token, or None;
    multi_modal_inputs: the processor's tensors for this prompt (see module docstring).
    """

    prompt_ids: Sequence[int]
    response_ids: Sequence[int]
    multi_modal_inputs: Mapping[str, torch.Tensor] = field(default_factory=dict)
    rollout_log_probs: Sequence[float] | None = None
    uid: str = ""
    weight_version: int = -1


def _as_ids(values: Sequence[int] | torch.Tensor, what: str, index: int) -> torch.Tensor:
    ids = torch.as_tensor(values)
    if ids.dim() == 2 and ids.shape[0] == 1:  # processor output keeps a batch dim
        ids = ids[0]
    if ids.dim() != 1 or (ids.numel() and ids.dtype.is_floating_point):
        raise RolloutBatchError(f"rollout {index}: {what} must be a 1-D sequence of token ids, got shape "
                                f"{tuple(ids.shape)} {ids.dtype}")
    if ids.numel() and int(ids.min()) < 0:
        raise RolloutBatchError(f"rollout {index}: {what} has a negative token id")
    return ids.long()


def _check_multi_modal(inputs: Mapping[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    unknown = set(inputs) - set(MULTI_MODAL_KEYS) - {"mm_token_type_ids"}
    if unknown:
        raise RolloutBatchError(f"rollout {index}: unknown multimodal inputs {sorted(unknown)}; "
                                f"expected some of {list(MULTI_MODAL_KEYS)}")
    checked = {key: torch.as_tensor(inputs[key]) for key in MULTI_MODAL_KEYS if key in inputs}
    for pixels, grid in (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw")):
        if (pixels in checked) != (grid in checked):
            raise RolloutBatchError(f"rollout {index}: {pixels} and {grid} must come together")
        if grid in checked:
            thw = checked[grid]
            if thw.dim() != 2 or thw.shape[-1] != 3:
                raise RolloutBatchError(f"rollout {index}: {grid} must have shape (n, 3), "
                                        f"got {tuple(thw.shape)}")
            if int(thw.prod(-1).sum()) != checked[pixels].shape[0]:
                patches = checked[pixels].shape[0]
                raise RolloutBatchError(f"rollout {index}: {pixels} has {patches} patches but "
                                        f"{grid} {thw.tolist()} needs {int(thw.prod(-1).sum())}")
    return checked


def build_batch(samples: Sequence[RolloutSample], pad_token_id: int) -> DataProto:
    """Pad `samples` into one DataProto (layout in the module docstring).

    Raises `RolloutBatchError` naming the rollout for empty responses, log-prob counts that do not
    match the response, or multimodal tensors that do not fit together.
    """
    if not samples:
        raise RolloutBatchError("no rollouts to build a batch from")
    prompts, responses, mm_inputs, log_probs = [], [], [], []
    for index, sample in enumerate(samples):
        prompt = _as_ids(sample.prompt_ids, "prompt_ids", index)
        response = _as_ids(sample.response_ids, "response_ids", index)
        if prompt.numel() == 0:
            raise RolloutBatchError(f"rollout {index} ({sample.uid}): empty prompt")
        if response.numel() == 0:
            raise RolloutBatchError(f"rollout {index} ({sample.uid}): empty response (nothing to train on)")
        if sample.rollout_log_probs is not None:
            lp = torch.as_tensor(sample.rollout_log_probs, dtype=torch.float32).flatten()
            if lp.numel() != response.numel():
                raise RolloutBatchError(f"rollout {index} ({sample.uid}): {lp.numel()} log-probs for "
                                        f"{response.numel()} response tokens")
            log_probs.append(lp)
        prompts.append(prompt)
        responses.append(response)
        mm_inputs.append(_check_multi_modal(sample.multi_modal_inputs, index))

    bs = len(samples)
    max_prompt = max(p.numel() for p in prompts)
    max_response = max(r.numel() for r in responses)
    prompt_batch = torch.full((bs, max_prompt), pad_token_id, dtype=torch.long)
    response_batch = torch.full((bs, max_response), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((bs, max_prompt), dtype=torch.long)
    response_mask = torch.zeros((bs, max_response), dtype=torch.long)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        prompt_batch[row, max_prompt - prompt.numel():] = prompt
        prompt_mask[row, max_prompt - prompt.numel():] = 1
        response_batch[row, : response.numel()] = response
        response_mask[row, : response.numel()] = 1

    tensors = {
        "prompts": prompt_batch,
        "responses": response_batch,
        "input_ids": torch.cat([prompt_batch, response_batch], dim=1),
        "attention_mask": torch.cat([prompt_mask, response_mask], dim=1),
        "response_mask": response_mask,
    }
    if len(log_probs) == bs:
        rollout_lp = torch.zeros((bs, max_response), dtype=torch.float32)
        for row, lp in enumerate(log_probs):
            rollout_lp[row, : lp.numel()] = lp
        tensors["rollout_log_probs"] = rollout_lp

    mm_array = np.empty(bs, dtype=object)
    mm_array[:] = mm_inputs
    uids = np.empty(bs, dtype=object)
    uids[:] = [sample.uid for sample in samples]
    non_tensors = {
        "multi_modal_inputs": mm_array,
        "uid": uids,
        "weight_version": np.array([sample.weight_version for sample in samples], dtype=np.int64),
    }
    meta_info = {"pad_token_id": pad_token_id}
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=meta_info)


@dataclass(frozen=True)
class VisionTokens:
    """The model's vision placeholder ids (from its config and tokenizer)."""

    image_token_id: int
    video_token_id: int
    merge_size: int
    #: ids the rollout never samples (vision_start/end/pad, image_pad, video_pad)
    blocked_ids: tuple[int, ...] = ()


def invalid_rows(batch: DataProto, vision: VisionTokens) -> dict[int, str]:
    """Rows the model cannot re-forward, with the reason: a placeholder count that does not match
    the row's grid (the forward would fail), or a blocked token in the response."""
    input_ids = batch.batch["input_ids"]
    response_width = batch.batch["responses"].shape[1]
    responses = batch.batch["responses"].masked_fill(batch.batch["response_mask"] == 0, -1)
    uids = batch.non_tensor_batch.get("uid", np.arange(len(batch)))
    reasons: dict[int, str] = {}
    blocked = torch.as_tensor(vision.blocked_ids, dtype=torch.long)
    for row, inputs in enumerate(batch.non_tensor_batch["multi_modal_inputs"]):
        label = f"rollout {row} ({uids[row]})"
        if blocked.numel() and torch.isin(responses[row], blocked).any():
            bad = sorted(set(responses[row][torch.isin(responses[row], blocked)].tolist()))
            reasons[row] = f"{label}: the response contains vision placeholder token(s) {bad}"
            continue
        placeholders = ((vision.video_token_id, "video_grid_thw"), (vision.image_token_id, "image_grid_thw"))
        for token_id, grid_key in placeholders:
            grid = inputs.get(grid_key)
            patches = int(torch.as_tensor(grid).prod(-1).sum()) if grid is not None else 0
            expected = patches // vision.merge_size ** 2
            found = int((input_ids[row, : input_ids.shape[1] - response_width] == token_id).sum())
            if found != expected:
                reasons[row] = (f"{label}: {found} placeholder tokens (id {token_id}) "
                                f"but {grid_key} needs {expected}")
                break
    return reasons


def check_batch(batch: DataProto, vision: VisionTokens) -> None:
    """Raise `RolloutBatchError` naming the first row the learner cannot forward.

    Rows of any modality mix freely (video, image and text-only rows in one batch): every
    forward runs the vision tower exactly once (`logprob`), so FSDP2 workers stay in step.
    """
    reasons = invalid_rows(batch, vision)
    if reasons:
        first = min(reasons)
        more = f" (and {len(reasons) - 1} more rows)" if len(reasons) > 1 else ""
        raise RolloutBatchError(reasons[first] + more)
