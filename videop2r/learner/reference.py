"""The frozen reference policy π_ref (method §4, the KL anchor): an FSDP2 shard without gradients.

Kept in `learner.reference_dtype` (bf16 by default: it is never stepped, so it needs no fp32
master copy) and, with `learner.reference_offload` on CUDA, on the CPU between its forwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from videop2r.learner.actor import forward_in_micro_batches
from videop2r.learner.logprob import response_log_probs
from videop2r.learner.rows import Rows


class ReferencePolicy:
    """Sharded like the actor (so a 7B reference fits beside it), never updated."""

    def __init__(self, model: nn.Module, settings: Any, device: torch.device,
                 blocked_token_ids: Sequence[int] = ()) -> None:
        model.requires_grad_(False)
        model.eval()
        self.model = model
        self.settings = settings
        self.device = device
        self.blocked_token_ids = list(blocked_token_ids)

    @torch.no_grad()
    def compute_ref_log_prob(self, data: Any) -> dict[str, torch.Tensor]:
        """`ref_log_prob` (bs, R) for this worker's share, micro-batched like the actor's passes (collective)."""
        def forward(micro: Rows) -> tuple[torch.Tensor]:
            log_probs, _ = response_log_probs(self.model, micro, self.settings.temperature, False, self.device,
                                              self.blocked_token_ids)
            return (log_probs,)

        (log_probs,) = forward_in_micro_batches(Rows.of(data), self.settings, self.device, forward)
        return {"ref_log_prob": log_probs}
