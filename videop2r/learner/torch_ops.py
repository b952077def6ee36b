"""verl's `agg_loss` and `kl_penalty` for the modes VideoP2R configures, in plain torch.

Used by `videop2r.algorithms.policy_loss` only where verl is not installed (bench/gpu_smoke.py on a
bare GPU machine); tests check they equal verl's functions (verl 0.9.1, trainer/ppo/core_algos.py).
Local aggregation only (no dp_size / global-batch scaling: the learner weights micro-batches itself).
"""

from __future__ import annotations

from typing import Any

import torch


def agg_loss(loss_mat: torch.Tensor, loss_mask: torch.Tensor, loss_agg_mode: str, **_: Any) -> torch.Tensor:
    mask = loss_mask.to(loss_mat.dtype)
    if loss_agg_mode == "token-mean":
        return (loss_mat * mask).sum() / mask.sum().clamp(min=1)
    if loss_agg_mode == "token-sum":
        return (loss_mat * mask).sum()
    sums = (loss_mat * mask).sum(-1)
    rows = (mask.sum(-1) > 0).to(loss_mat.dtype)
    if loss_agg_mode == "seq-mean-token-sum":
        per_row = sums
    elif loss_agg_mode == "seq-mean-token-mean":
        per_row = sums / mask.sum(-1).clamp(min=1)
    else:
        raise ValueError(f"loss_agg_mode {loss_agg_mode!r} needs verl")
    return (per_row * rows).sum() / rows.sum().clamp(min=1)


def kl_penalty(logprob: torch.Tensor, ref_logprob: torch.Tensor, kl_penalty: str) -> torch.Tensor:
    if kl_penalty in ("kl", "k1"):
        return logprob - ref_logprob
    if kl_penalty == "abs":
        return (logprob - ref_logprob).abs()
    if kl_penalty in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    if kl_penalty in ("low_var_kl", "k3"):
        kl = torch.clamp(ref_logprob - logprob, min=-20, max=20)
        return torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)
    raise ValueError(f"kl_penalty {kl_penalty!r} needs verl")
