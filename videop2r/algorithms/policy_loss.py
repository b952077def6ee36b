"""PA-GRPO loss: clipped surrogate per process plus β·KL(π_θ || π_ref) (method §4).

    J = E[ Σ_k min(ρ A_k, clip(ρ, 1−ε, 1+ε) A_k) − β D_KL ]

ρ is the per-token ratio π_θ/π_old. Because A_P and A_R live on disjoint tokens (the advantages
tensor from `compute_process_advantages`), clipping each token with its own advantage *is* the
per-process objective: the sum over k splits into the perception tokens and the reasoning tokens,
and neither process's clip touches the other's tokens. The same function therefore serves
``grpo`` and ``pa_grpo_no_separation`` too (their advantages are on all tokens).

The surrogate is the plain PPO clip of method §4 (verl's ``vanilla`` loss adds a dual clip for
negative advantages, c = 3, which the paper does not have; the two agree whenever ρ < 3). KL and
loss aggregation are verl's `kl_penalty` and `agg_loss`, so ``low_var_kl``/``k3`` is the k3
estimator and every verl aggregation mode works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
try:
    from verl.trainer.ppo.core_algos import agg_loss, kl_penalty
except ImportError:  # a bare torch + transformers machine (bench/gpu_smoke.py): the same formulas
    from videop2r.learner.torch_ops import agg_loss, kl_penalty

_LOG_RATIO_LIMIT = 20.0  # as verl: exp(±20) keeps the ratio finite


def _setting(config: Any, name: str) -> Any:
    if isinstance(config, Mapping):
        return config[name]
    return getattr(config, name)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    total = mask.sum()
    return float((values * mask).sum() / total) if total > 0 else 0.0


PROCESS_MEAN = "seq-mean-process-mean"


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, perception_mask: torch.Tensor | None = None,
              reasoning_mask: torch.Tensor | None = None, **scale: Any) -> torch.Tensor:
    """verl's `agg_loss`, plus seq-mean-process-mean: per rollout, the mean over its perception tokens
    plus the mean over its reasoning tokens (a missing segment adds 0), then the mean over rollouts.
    Without process masks (SFT) that mode is the per-rollout token mean."""
    if mode != PROCESS_MEAN:
        return agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=mode, **scale)
    if perception_mask is None or reasoning_mask is None:
        return agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode="seq-mean-token-mean", **scale)
    per_rollout = torch.zeros(loss_mat.shape[0], dtype=loss_mat.dtype, device=loss_mat.device)
    for process_mask in (perception_mask, reasoning_mask):
        span = process_mask.to(mask.dtype) * mask
        per_rollout = per_rollout + (loss_mat * span).sum(-1) / span.sum(-1).clamp(min=1)
    rollouts = (mask.sum(-1) > 0).to(loss_mat.dtype)
    return (per_rollout * rollouts).sum() / rollouts.sum().clamp(min=1)


def pa_grpo_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    ref_log_prob: torch.Tensor | None,
    config: Any,
    *,
    perception_mask: torch.Tensor | None = None,
    reasoning_mask: torch.Tensor | None = None,
    dp_size: int = 1,
    batch_num_tokens: int | None = None,
    global_batch_size: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Scalar loss to minimise and its metrics.

    Args:
        old_log_prob, log_prob, ref_log_prob: token log-probs under π_old (rollout), π_θ and
            π_ref, each ``(bs, response_length)``; `ref_log_prob` may be None when kl_coef is 0.
        advantages: per-token advantages ``(bs, response_length)``.
        response_mask: 1 on response tokens ``(bs, response_length)``.
        config: `AlgorithmConfig` or a mapping with clip_ratio, kl_coef, kl_estimator, loss_agg_mode.
        perception_mask, reasoning_mask: optional ``(bs, response_length)``, for per-process metrics.
        dp_size, batch_num_tokens, global_batch_size: passed to verl's `agg_loss` so that the loss
            of a micro-batch is scaled for the global batch across data-parallel ranks.
    """
    clip_ratio = float(_setting(config, "clip_ratio"))
    kl_coef = float(_setting(config, "kl_coef"))
    mode = str(_setting(config, "loss_agg_mode"))
    mask = response_mask.to(log_prob.dtype)
    scale = {"dp_size": dp_size, "batch_num_tokens": batch_num_tokens, "global_batch_size": global_batch_size}

    if mask.sum() == 0:  # nothing to learn from; keep the graph so backward() still works
        zero = (log_prob * 0).sum()
        return zero, {"actor/pg_loss": 0.0, "actor/kl_loss": 0.0, "actor/pg_clipfrac": 0.0, "actor/ppo_kl": 0.0}

    log_ratio = torch.clamp(log_prob - old_log_prob, -_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_ratio, 1 + clip_ratio)
    pg_losses = torch.maximum(unclipped, clipped)  # = −min(ρA, clip(ρ)A)
    pg_loss = aggregate(pg_losses, mask, mode, perception_mask, reasoning_mask, **scale)

    is_clipped = (clipped > unclipped).float()
    metrics = {
        "actor/pg_loss": float(pg_loss.detach()),
        "actor/pg_clipfrac": _masked_mean(is_clipped, mask),
        "actor/ppo_kl": _masked_mean(-log_ratio.detach(), mask),
    }
    for process, process_mask in (("perception", perception_mask), ("reasoning", reasoning_mask)):
        if process_mask is not None:
            metrics[f"actor/pg_clipfrac/{process}"] = _masked_mean(is_clipped, process_mask.to(mask.dtype) * mask)

    loss = pg_loss
    if kl_coef > 0:
        if ref_log_prob is None:
            raise ValueError("kl_coef > 0 needs ref_log_prob")
        kl = kl_penalty(log_prob, ref_log_prob, str(_setting(config, "kl_estimator")))
        # the KL term of the objective is per rollout, over all its tokens
        kl_loss = aggregate(kl, mask, mode, **scale)
        loss = pg_loss + kl_coef * kl_loss
        metrics["actor/kl_loss"] = float(kl_loss.detach())
        metrics["actor/kl"] = _masked_mean(kl.detach(), mask)
    else:
        metrics["actor/kl_loss"] = 0.0
    metrics["actor/loss"] = float(loss.detach())
    return loss, metrics
