"""Connect the driver to Ray: an existing cluster, the cluster of a Ray job, or a private local one.

- `trainer.ray_address` set → that cluster;
- `$RAY_ADDRESS` set (a `ray job submit` entrypoint gets it from the job supervisor; a KubeRay
  RayJob too) → that cluster;
- neither → a new local Ray for this process only (address="local"), never a cluster some other
  process on the machine happened to start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videop2r.config import VideoP2RConfig

log = logging.getLogger(__name__)

@contextlib.contextmanager
def ray_session(address: str = "", num_cpus: int | None = None) -> Iterator[str]:
    """Initialise Ray (unless already initialised) and shut it down afterwards if we started it.

    Yields a short description of the cluster ("local" or the address).
    """
    import ray

    if ray.is_initialized():
        yield "existing"
        return
    target = address or os.environ.get("RAY_ADDRESS", "")
    if target:
        log.info("connecting to the Ray cluster at %s", target)
        # no runtime_env here: a job driver keeps the one it was submitted with
        ray.init(address=target, log_to_driver=True)
        where = target
    else:
        log.info("starting a local Ray instance")
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 2, include_dashboard=False,
                 log_to_driver=True)  # workers inherit this process's environment
        where = "local"
    try:
        yield where
    finally:
        ray.shutdown()


def learner_layout(num_workers: int, use_gpu: bool, nodes: Sequence[Mapping[str, Any]]) -> list[int]:
    """Learner workers per node for verl's `RayResourcePool(process_on_nodes=...)`.

    verl makes one STRICT_PACK placement group per entry, each bundle {CPU: 1, GPU: 1 if use_gpu}:
    a single entry larger than any node never schedules (verl waits without a deadline). So the
    workers go on as few nodes as possible: one entry when a node holds them all, else the
    biggest nodes first (16 workers on two 8-GPU learner pods: [8, 8]). `nodes` is `ray.nodes()`.
    A cluster too small for `num_workers` gets [num_workers]; the Learner refuses it by name.
    """
    capacities = []
    for node in nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources") or {}
        cpus = int(resources.get("CPU", 0))
        capacity = min(cpus, int(resources.get("GPU", 0))) if use_gpu else cpus
        if capacity > 0:
            capacities.append(capacity)
    capacities.sort(reverse=True)
    if not capacities or capacities[0] >= num_workers or sum(capacities) < num_workers:
        return [num_workers]
    layout, remaining = [], num_workers
    for capacity in capacities:
        take = min(capacity, remaining)
        layout.append(take)
        remaining -= take
        if remaining == 0:
            break
    return layout


def learner_placement(config: VideoP2RConfig) -> list[int]:
    """`learner_layout` of learner.num_workers on the connected Ray cluster, deciding GPU use as
    the Learner does (`wants_gpu`)."""
    import ray

    from videop2r.learner.group import wants_gpu

    num_workers = config.learner.num_workers
    layout = learner_layout(num_workers, wants_gpu(config.learner.device, num_workers), ray.nodes())
    if len(layout) > 1:
        log.info("learner: %d workers over %d nodes %s", num_workers, len(layout), layout)
    return layout
