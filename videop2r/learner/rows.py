"""A worker's share of a batch as plain tensors: what the actor core needs, with torch alone.

The driver and the worker group speak verl's `DataProto`; the actor core (forward, micro-batch
planning, update) works on `Rows` so it imports without Ray or verl (bench/gpu_smoke.py runs it
on a machine with torch and transformers only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

#: multimodal tensors the Qwen2.5-VL forward accepts, concatenated along dim 0 across samples
MULTI_MODAL_KEYS = (
    "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts",
)


@dataclass
class Rows:
    """`tensors`: (bs, ...) tensors (input_ids, attention_mask, responses, response_mask, ...);
    `multi_modal`: one dict of MULTI_MODAL_KEYS tensors per row (ragged)."""

    tensors: dict[str, torch.Tensor]
    multi_modal: list[Mapping[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.multi_modal:
            self.multi_modal = [{} for _ in range(len(self))]

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def keys(self) -> set[str]:
        return set(self.tensors)

    def select(self, index: Sequence[int]) -> Rows:
        picked = torch.as_tensor(list(index), dtype=torch.long)
        return Rows({key: value[picked] for key, value in self.tensors.items()},
                    [self.multi_modal[i] for i in picked.tolist()])

    @classmethod
    def of(cls, data: Any) -> Rows:
        """Rows of a verl `DataProto` (or Rows as is)."""
        if isinstance(data, Rows):
            return data
        tensors = {key: data.batch[key] for key in data.batch.keys()}
        multi_modal = data.non_tensor_batch.get("multi_modal_inputs") if data.non_tensor_batch else None
        return cls(tensors, list(multi_modal) if multi_modal is not None else [])

