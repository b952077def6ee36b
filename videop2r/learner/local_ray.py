"""Start a private, local Ray instance for the embedded (laptop / CI) learner.

Ray 2.60 turns token authentication on by default for a new local cluster and, unless a token is
already available, writes a fresh one to ~/.ray/auth_token. Here the token lives only in this
process's environment (`RAY_AUTH_TOKEN`, inherited by Ray's processes and workers), so nothing is
left in the home directory. `RAY_AUTH_MODE=disabled` in the environment is respected.
`address="local"` always starts a new instance: a bare `ray.init()` would attach to whatever
cluster /tmp/ray/ray_current_cluster names — possibly another program's, or a stale one.
"""

from __future__ import annotations

import os
import secrets
import tempfile

AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"


def init_local_ray(num_cpus: int, num_gpus: int | None = None, temp_dir: str | None = None) -> str:
    """Start a new local Ray with `num_cpus` logical CPUs; returns its session temp dir.

    Learner workers reserve one logical CPU each, so `num_cpus` ≥ workers (+ any other actors).
    The temp dir is private (default: a fresh /tmp/ray-videop2r-*), so this instance never becomes
    the "current cluster" that a bare `ray.init()` of another program would join.
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process")
    if os.environ.get(AUTH_MODE_ENV, "token") == "token":
        # only the token: with RAY_AUTH_MODE unset, ray.init switches token mode on itself *and*
        # refreshes its config, which an `import ray` earlier in the process has already read
        os.environ.setdefault(AUTH_TOKEN_ENV, secrets.token_hex(32))
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="ray-videop2r-")
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             _temp_dir=temp_dir, configure_logging=False)
    return temp_dir
