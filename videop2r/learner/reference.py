"""The frozen reference policy π_ref (SPEC §4, the KL anchor): an FSDP2 shard without gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from verl import DataProto

from videop2r.learner.logprob import response_log_probs


class ReferencePolicy:
    """Sharded like the actor (so a 7B reference fits beside it), never updated."""

    def __init__(self, model: nn.Module, temperature: float, micro_batch_size: int, device: torch.device,
                 blocked_token_ids: Sequence[int] = ()) -> None:
        model.requires_grad_(False)
        model.eval()
        self.model = model
        self.temperature = temperature
        self.micro_batch_size = micro_batch_size
        self.device = device
        self.blocked_token_ids = list(blocked_token_ids)

    @torch.no_grad()
    def compute_ref_log_prob(self, data: DataProto) -> DataProto:
        """DataProto with `ref_log_prob` (bs, R) for this worker's share of the batch (collective)."""
        parts = []
        for micro in data.split(self.micro_batch_size):
            log_probs, _ = response_log_probs(self.model, micro, self.temperature, False, self.device,
                                              self.blocked_token_ids)
            parts.append(log_probs.cpu())
        return DataProto.from_dict(tensors={"ref_log_prob": torch.cat(parts)})
