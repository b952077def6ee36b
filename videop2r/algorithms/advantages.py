"""Group-relative advantages per process: PA-GRPO, its ablations, and process-agnostic GRPO (method §4, §6).

Within each group (the G rollouts of one prompt) and for each process k ∈ {P, R}:

    A_{i,k} = (R_{i,k} − mean_j R_{j,k}) / (std_j R_{j,k} + eps)

std is the unbiased (Bessel) sample std, as in verl's and TRL's GRPO. A group whose scores are
all equal — or that has a single rollout, where the spread is undefined (**ours**; verl's GRPO
uses the raw score there) — carries no signal: its advantage is exactly 0 and it is counted in
the collapse fraction of that process.

Estimators:
- ``pa_grpo``: A_P on the perception tokens, A_R on the reasoning tokens, 0 elsewhere.
- ``pa_grpo_no_separation``: A_P + A_R on every response token (both advantages on all tokens).
- ``grpo``: one reward R_P + R_R per rollout, normalised once, on every response token.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

PA_GRPO = "pa_grpo"
PA_GRPO_NO_SEPARATION = "pa_grpo_no_separation"
GRPO = "grpo"
ESTIMATORS = (PA_GRPO, PA_GRPO_NO_SEPARATION, GRPO)


@dataclass(frozen=True)
class GroupNormalised:
    """Normalised scores of one process."""

    advantage: torch.Tensor  # (bs,)
    collapsed: torch.Tensor  # (bs,) bool: the rollout's group had zero spread (or one member)
    collapse_fraction: float  # collapsed groups / groups


def group_ids(index: Sequence[Hashable] | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group ids ``(bs,)`` int64 from any per-rollout group keys (uids), in first-seen order."""
    keys = index.tolist() if isinstance(index, (np.ndarray, torch.Tensor)) else list(index)
    dense: dict[Hashable, int] = {}
    ids = [dense.setdefault(key, len(dense)) for key in keys]
    return torch.tensor(ids, dtype=torch.int64), len(dense)


def group_normalise(
    scores: torch.Tensor, index: Sequence[Hashable] | np.ndarray | torch.Tensor, eps: float = 1e-6,
    scale_by_std: bool = True,
) -> GroupNormalised:
    """(R − group mean) / (group std + eps) for scores ``(bs,)``; collapsed groups get exactly 0.

    `scale_by_std=False` only centres (Dr. GRPO). Statistics in float64.
    """
    values = torch.as_tensor(scores).detach().to(torch.float64).reshape(-1)
    groups, n_groups = group_ids(index)
    if groups.shape[0] != values.shape[0]:
        raise ValueError(f"index has {groups.shape[0]} entries for {values.shape[0]} scores")
    if not torch.isfinite(values).all():
        raise ValueError("scores must be finite")
    if values.numel() == 0:
        return GroupNormalised(values.float(), torch.zeros(0, dtype=torch.bool), 0.0)
    zeros = torch.zeros(n_groups, dtype=torch.float64)
    count = zeros.scatter_add(0, groups, torch.ones_like(values))
    mean = zeros.scatter_add(0, groups, values) / count
    deviation = values - mean[groups]
    variance = zeros.scatter_add(0, groups, deviation**2) / (count - 1).clamp(min=1)
    high = zeros.scatter_reduce(0, groups, values, reduce="amax", include_self=False)
    low = zeros.scatter_reduce(0, groups, values, reduce="amin", include_self=False)
    # Exact test on the raw values: a float std of equal values may come out as 1e-17, not 0.
    collapsed_group = (count < 2) | (high == low)
    advantage = deviation / (variance.sqrt()[groups] + eps) if scale_by_std else deviation
    collapsed = collapsed_group[groups]
    advantage = torch.where(collapsed, torch.zeros_like(advantage), advantage)
    return GroupNormalised(advantage.float(), collapsed, float(collapsed_group.float().mean()))


@dataclass(frozen=True)
class ProcessAdvantages:
    """Advantages of a batch and what to log about them."""

    advantages: torch.Tensor  # (bs, response_length), per token
    perception_advantage: torch.Tensor  # (bs,): A_P (grpo: the single advantage)
    reasoning_advantage: torch.Tensor  # (bs,): A_R (grpo: the single advantage)
    collapse_fraction: dict[str, float]  # per process ("total" for grpo)
    metrics: dict[str, float] = field(default_factory=dict)


def _token_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    total = mask.sum()
    return float((values * mask).sum() / total) if total > 0 else 0.0


def _check_mask(name: str, mask: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(shape)} (bs, response_length)")
    return (mask != 0).float()


def compute_process_advantages(
    estimator: str,
    perception_scores: torch.Tensor,
    reasoning_scores: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Hashable] | np.ndarray | torch.Tensor,
    perception_mask: torch.Tensor | None = None,
    reasoning_mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    scale_by_std: bool = True,
) -> ProcessAdvantages:
    """Per-token advantages for one of ESTIMATORS.

    Args:
        perception_scores, reasoning_scores: R_P and R_R per rollout, ``(bs,)``.
        response_mask: 1 on response tokens, 0 on padding, ``(bs, response_length)``.
        index: group key (prompt uid) per rollout, ``(bs,)``.
        perception_mask, reasoning_mask: process token masks ``(bs, response_length)``, disjoint;
            required for ``pa_grpo``, used for the per-process metrics otherwise.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {estimator!r} (expected one of {ESTIMATORS})")
    response = _check_mask("response_mask", response_mask, torch.as_tensor(response_mask).shape)
    if response.dim() != 2:
        raise ValueError(f"response_mask must be (bs, response_length), got shape {tuple(response.shape)}")
    perception = _check_mask("perception_mask", perception_mask, response.shape)
    reasoning = _check_mask("reasoning_mask", reasoning_mask, response.shape)
    if estimator == PA_GRPO and (perception is None or reasoning is None):
        raise ValueError("pa_grpo needs perception_mask and reasoning_mask")
    if perception is not None and reasoning is not None and (perception * reasoning).any():
        raise ValueError("perception_mask and reasoning_mask overlap; each token belongs to one process")
    for name, scores in (("perception_scores", perception_scores), ("reasoning_scores", reasoning_scores)):
        if torch.as_tensor(scores).reshape(-1).shape[0] != response.shape[0]:
            raise ValueError(f"{name} must have one score per rollout ({response.shape[0]})")

    if estimator == GRPO:
        total = torch.as_tensor(perception_scores, dtype=torch.float64) + torch.as_tensor(
            reasoning_scores, dtype=torch.float64
        )
        single = group_normalise(total, index, eps, scale_by_std)
        advantages = single.advantage[:, None] * response
        metrics = {
            "advantage/collapse_fraction/total": single.collapse_fraction,
            "advantage/mean/total": _token_mean(advantages, response),
            "advantage/abs_mean/total": _token_mean(advantages.abs(), response),
        }
        return ProcessAdvantages(
            advantages, single.advantage, single.advantage, {"total": single.collapse_fraction}, metrics
        )

    by_process = {
        "perception": group_normalise(perception_scores, index, eps, scale_by_std),
        "reasoning": group_normalise(reasoning_scores, index, eps, scale_by_std),
    }
    a_p, a_r = by_process["perception"].advantage, by_process["reasoning"].advantage
    if estimator == PA_GRPO:
        advantages = (a_p[:, None] * perception + a_r[:, None] * reasoning) * response
    else:  # no separation: both advantages on every response token
        advantages = (a_p + a_r)[:, None] * response
    metrics = {}
    for process, mask in (("perception", perception), ("reasoning", reasoning)):
        metrics[f"advantage/collapse_fraction/{process}"] = by_process[process].collapse_fraction
        if mask is not None:
            metrics[f"advantage/mean/{process}"] = _token_mean(advantages, mask * response)
            metrics[f"advantage/abs_mean/{process}"] = _token_mean(advantages.abs(), mask * response)
    collapse = {process: result.collapse_fraction for process, result in by_process.items()}
    return ProcessAdvantages(advantages, a_p, a_r, collapse, metrics)


def stack_process_masks(
    masks: Sequence[tuple[Sequence[bool] | np.ndarray, Sequence[bool] | np.ndarray]], response_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(bs, response_length)`` float masks from per-rollout (perception, reasoning) masks.

    Each pair comes from `videop2r.rewards.token_masks_for_ids` (one entry per response token);
    tokens past `response_length` are cut, as the response itself is.
    """
    perception = torch.zeros(len(masks), response_length)
    reasoning = torch.zeros(len(masks), response_length)
    for row, (p_mask, r_mask) in enumerate(masks):
        p = torch.as_tensor(np.asarray(p_mask, dtype=np.float32)[:response_length])
        r = torch.as_tensor(np.asarray(r_mask, dtype=np.float32)[:response_length])
        perception[row, : p.shape[0]] = p
        reasoning[row, : r.shape[0]] = r
    return perception, reasoning
