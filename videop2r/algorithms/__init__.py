"""PA-GRPO (method §4, §6): per-process advantages and the clipped-surrogate + KL loss.

Importing this package registers ``pa_grpo``, ``pa_grpo_no_separation`` and
``process_agnostic_grpo`` in verl's advantage-estimator registry (idempotent), so that
``verl.trainer.ppo.core_algos.get_adv_estimator_fn("pa_grpo")`` returns ours.
"""

from videop2r.algorithms.advantages import (
    ESTIMATORS,
    GRPO,
    PA_GRPO,
    PA_GRPO_NO_SEPARATION,
    GroupNormalised,
    ProcessAdvantages,
    compute_process_advantages,
    group_normalise,
    stack_process_masks,
)
from videop2r.algorithms.policy_loss import pa_grpo_policy_loss
from videop2r.algorithms.verl_registry import (
    REGISTRY_NAMES,
    compute_pa_grpo_advantage,
    compute_pa_grpo_no_separation_advantage,
    compute_process_agnostic_grpo_advantage,
    register_estimators,
    registered_name,
)

register_estimators()

__all__ = [
    "ESTIMATORS",
    "GRPO",
    "PA_GRPO",
    "PA_GRPO_NO_SEPARATION",
    "REGISTRY_NAMES",
    "GroupNormalised",
    "ProcessAdvantages",
    "compute_pa_grpo_advantage",
    "compute_pa_grpo_no_separation_advantage",
    "compute_process_advantages",
    "compute_process_agnostic_grpo_advantage",
    "group_normalise",
    "pa_grpo_policy_loss",
    "register_estimators",
    "registered_name",
    "stack_process_masks",
]
