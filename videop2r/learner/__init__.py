"""The PA-GRPO learner: FSDP2 policy shards on a verl `RayWorkerGroup`, driven from the trainer.

Public API (names are imported lazily, so `import videop2r.learner` stays cheap):

- ``Learner(settings, num_workers, *, use_gpu=None, failure_grace_s=10.0, process_on_nodes=None)``
  — builds the worker group (needs Ray
  initialised: ``init_local_ray`` on a laptop, the RayCluster in a RayJob) and loads the model.
  Methods, each blocking and collective over the workers:
  ``compute_log_prob(batch) -> DataProto[old_log_probs, entropys]``,
  ``compute_ref_log_prob(batch) -> DataProto[ref_log_prob]``,
  ``update_policy(batch) -> dict[str, float]`` (one training step),
  ``export_weights(uri, version) -> dict`` (HF checkpoint + weight_version.json at `uri`),
  ``save_state(uri) -> dict`` / ``load_state(uri) -> dict``, ``ping()``, ``shutdown()``;
  attributes ``world_size``, ``worker_names``, ``vision`` (``VisionTokens``).
- ``LearnerSettings`` (``.from_config``) — what the workers are told.
- ``RolloutSample``, ``build_batch(samples, pad_token_id) -> DataProto``, ``check_batch``,
  ``invalid_rows``, ``VisionTokens``, ``RolloutBatchError`` — rollouts → batch.
- ``read_weight_version(uri)``, ``WEIGHT_VERSION_FILE`` — the rollout side's view of an export.
- Errors: ``LearnerError`` ⊃ ``LearnerWorkerDied``, ``LearnerWorkerFailed``, ``LearnerGroupBroken``;
  ``LearnerStateError`` (inside ``LearnerWorkerFailed``) for a missing/incomplete state.
- ``init_local_ray(num_cpus)`` — a private local Ray for the embedded path and tests.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Learner": "group",
    "LearnerError": "group",
    "LearnerGroupBroken": "group",
    "LearnerWorkerDied": "group",
    "LearnerWorkerFailed": "group",
    "LearnerWorkerGroup": "group",
    "LearnerWorker": "worker",
    "LearnerSettings": "settings",
    "RolloutSample": "batch",
    "RolloutBatchError": "batch",
    "VisionTokens": "batch",
    "build_batch": "batch",
    "check_batch": "batch",
    "invalid_rows": "batch",
    "WEIGHT_VERSION_FILE": "export",
    "read_weight_version": "export",
    "LearnerStateError": "training_state",
    "init_local_ray": "local_ray",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'videop2r.learner' has no attribute {name!r}")
    return getattr(importlib.import_module(f"videop2r.learner.{module}"), name)
