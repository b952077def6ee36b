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
from collections.abc import Iterator

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
