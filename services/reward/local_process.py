"""Start a service as a real local process on 127.0.0.1 and wait until its health path says ok.

Used by the integration tests and the benches (never by the services themselves). The process
handling is the driver's own (`videop2r.train.services_local.ServiceProcess`: own session, dies
with its parent, SIGTERM then SIGKILL); this adds a context manager, `{port}` substitution, a
temporary log file and a /metrics reader.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import httpx

from videop2r.train.services_local import ServiceProcess, ServiceStartError, free_port

__all__ = ["LocalService", "free_port", "videop2r_service"]


class LocalService(ServiceProcess):
    """`with LocalService(["-m", "videop2r", "serve", ...]) as svc: svc.url` — args go after `python`.

    Pass `{port}` in `args` to get a free port substituted. The process's output goes to a log
    file (`svc.log_text()`), so a chatty service never blocks on a full pipe.
    """

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, startup_timeout_s: float = 90.0,
                 health_path: str = "/healthz") -> None:
        port = free_port()
        with tempfile.NamedTemporaryFile(prefix="videop2r-service-", suffix=".log", delete=False) as log:
            log_path = Path(log.name)
        argv = [sys.executable, *(arg.replace("{port}", str(port)) for arg in args)]
        super().__init__(" ".join(args[:4]), argv, port, health_path, log_path)
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.startup_timeout_s = startup_timeout_s

    def __enter__(self) -> "LocalService":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start and wait until healthy; a service that exits or stays unhealthy is stopped, then raised."""
        super().start({**self.env, **(env or {})})
        try:
            self.wait_healthy(self.startup_timeout_s)
        except ServiceStartError as error:
            self.stop()
            raise ServiceStartError(f"{error}\n{self.log_text()[-3000:]}") from None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the service's process group (its worker processes too), SIGKILL after `grace_s`."""
        super().stop(grace_s)

    def metric(self, series: str) -> float:
        """One series of /metrics, e.g. 'videop2r_judge_cache_hits_total{judge="openai"}'; 0 if absent."""
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def videop2r_service(*args: str, env: dict[str, str] | None = None) -> LocalService:
    """`videop2r serve <args>` on a free port (not started: use it as a context manager)."""
    return LocalService(["-m", "videop2r", "serve", *args, "--port", "{port}"], env=env)
