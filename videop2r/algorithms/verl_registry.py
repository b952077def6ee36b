"""Our advantage estimators in verl's registry (`verl.trainer.ppo.core_algos.register_adv_est`).

Registered names: ``pa_grpo``, ``pa_grpo_no_separation``, and ``process_agnostic_grpo`` (the
config value ``grpo``: verl already owns that name, with another G = 1 rule, see advantages.py).
`registered_name(config.adv_estimator)` maps a config value to its registry name.

The functions take verl's keyword arguments (token_level_rewards, response_mask, index,
epsilon, norm_adv_by_std_in_grpo, config) and return ``(advantages, returns)`` like every verl
estimator, plus the PA-GRPO inputs as keywords:

- ``perception_mask``, ``reasoning_mask``: ``(bs, response_length)`` process token masks;
- ``perception_scores``, ``reasoning_scores``: R_P, R_R ``(bs,)``. When absent they are read off
  `token_level_rewards` as its sums over the two masks (grpo without masks: its plain sum);
- ``metrics``: an optional dict, filled with the collapse fractions and advantage means.

`config` may be verl's AlgoConfig or ours: ``norm_eps`` (else `epsilon`) and
``norm_adv_by_std_in_grpo`` are read from it when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
from verl.trainer.ppo import core_algos

from videop2r.algorithms.advantages import GRPO, PA_GRPO, PA_GRPO_NO_SEPARATION, compute_process_advantages

REGISTRY_NAMES = {
    PA_GRPO: "pa_grpo",
    PA_GRPO_NO_SEPARATION: "pa_grpo_no_separation",
    GRPO: "process_agnostic_grpo",
}


def registered_name(adv_estimator: str) -> str:
    """verl registry name of a config `algorithm.adv_estimator` value."""
    try:
        return REGISTRY_NAMES[adv_estimator]
    except KeyError:
        raise ValueError(f"unknown adv_estimator {adv_estimator!r} (expected one of {tuple(REGISTRY_NAMES)})") from None


def _setting(config: Any, name: str, default: Any) -> Any:
    if config is None:
        return default
    try:
        value = config.get(name) if isinstance(config, Mapping) or hasattr(config, "get") else getattr(config, name)
    except (AttributeError, KeyError, TypeError):
        return default
    return default if value is None else value


def _verl_estimator(estimator: str, name: str, summary: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """A verl-signature advantage function for one of our estimators (verl calls it by keyword)."""

    def advantage(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: np.ndarray,
        epsilon: float = 1e-6,
        norm_adv_by_std_in_grpo: bool = True,
        config: Any = None,
        *,
        perception_mask: torch.Tensor | None = None,
        reasoning_mask: torch.Tensor | None = None,
        perception_scores: torch.Tensor | None = None,
        reasoning_scores: torch.Tensor | None = None,
        metrics: dict[str, float] | None = None,
        **unused: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if (perception_scores is None) != (reasoning_scores is None):
            raise ValueError("pass both perception_scores and reasoning_scores, or neither")
        if perception_scores is None:
            if perception_mask is not None and reasoning_mask is not None:
                perception_scores = (token_level_rewards * perception_mask).sum(-1)
                reasoning_scores = (token_level_rewards * reasoning_mask).sum(-1)
            elif estimator == GRPO:
                perception_scores = token_level_rewards.sum(-1)
                reasoning_scores = torch.zeros_like(perception_scores)
            else:
                raise ValueError(f"{estimator} needs perception/reasoning scores or masks")
        result = compute_process_advantages(
            estimator,
            perception_scores,
            reasoning_scores,
            response_mask,
            index,
            perception_mask=perception_mask,
            reasoning_mask=reasoning_mask,
            eps=float(_setting(config, "norm_eps", epsilon)),
            scale_by_std=bool(_setting(config, "norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo)),
        )
        if metrics is not None:
            metrics.update(result.metrics)
        advantages = result.advantages.to(token_level_rewards.device)
        return advantages, advantages

    # a stable module-level identity, so re-registration after a reload is recognised (register_estimators)
    advantage.__name__ = advantage.__qualname__ = name
    advantage.__doc__ = f"{summary}; ``(bs, response_length)`` twice."
    return advantage


compute_pa_grpo_advantage = _verl_estimator(
    PA_GRPO, "compute_pa_grpo_advantage", "PA-GRPO: A_P on perception tokens, A_R on reasoning tokens")
compute_pa_grpo_no_separation_advantage = _verl_estimator(
    PA_GRPO_NO_SEPARATION, "compute_pa_grpo_no_separation_advantage",
    "Ablation: A_P + A_R on every response token")
compute_process_agnostic_grpo_advantage = _verl_estimator(
    GRPO, "compute_process_agnostic_grpo_advantage",
    "Plain GRPO: one advantage of R_P + R_R on every response token")

ESTIMATOR_FUNCTIONS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "pa_grpo": compute_pa_grpo_advantage,
    "pa_grpo_no_separation": compute_pa_grpo_no_separation_advantage,
    "process_agnostic_grpo": compute_process_agnostic_grpo_advantage,
}


def register_estimators() -> None:
    """Register ours in verl's registry; safe to call again (and after a module reload).

    A name held by someone else's function is verl's usual "already registered" error.
    """
    for name, fn in ESTIMATOR_FUNCTIONS.items():
        existing = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if existing is fn:
            continue
        if existing is not None and (existing.__module__, existing.__qualname__) == (fn.__module__, fn.__qualname__):
            core_algos.ADV_ESTIMATOR_REGISTRY[name] = fn  # our own module, re-imported: take the new object
            continue
        core_algos.register_adv_est(name)(fn)
