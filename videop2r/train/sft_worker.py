"""The SFT learner worker: the PA-GRPO learner worker with the policy loss swapped for token NLL.

`videop2r.learner.LearnerWorker` exposes `_policy_loss()` as its extension point; everything else
— FSDP2 sharding, micro-batch weighting across workers, gradient clipping, the LR schedule,
HF export and training-state save/load — is the learner's own code, so SFT checkpoints and
PA-GRPO checkpoints are the same format. Lives in its own module so Ray workers can import it.
"""

from __future__ import annotations

from typing import Any

import torch

from videop2r.algorithms.policy_loss import aggregate
from videop2r.learner.worker import LearnerWorker


def sft_nll_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    ref_log_prob: torch.Tensor | None,
    config: Any,
    **_: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of the reference response tokens (assistant tokens only).

    log_prob, response_mask: ``(bs, response_length)``; the other tensors are ignored (SFT has no
    advantages, no old policy and no reference). Aggregated with the config's loss_agg_mode so the
    learner's micro-batch weighting gives the mean over the whole global batch.
    """
    mask = response_mask.to(log_prob.dtype)
    mode = config.loss_agg_mode if hasattr(config, "loss_agg_mode") else config["loss_agg_mode"]
    # SFT has no process spans: `aggregate` takes seq-mean-process-mean as the per-rollout token mean
    loss = aggregate(-log_prob, mask, mode)
    with torch.no_grad():
        tokens = mask.sum().clamp(min=1)
        nll = float((-log_prob * mask).sum() / tokens)
    return loss, {"sft/nll": nll, "sft/tokens": float(mask.sum())}


class SFTWorker(LearnerWorker):
    """LearnerWorker that trains on teacher-forced reference outputs."""

    def _policy_loss(self):  # noqa: ANN202 - the learner's PolicyLossFn
        return sft_nll_loss
