"""Start a service as a real local process on 127.0.0.1 and wait until `/healthz` says ok.

Used by the integration tests and the benches (never by the services themselves).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalService:
    """`with LocalService(["-m", "videop2r", "serve", ...]) as svc: svc.url` — args go after `python`.

    Pass `{port}` in `args` to get a free port substituted. The process's output goes to a log
    file (`svc.log_text()`), so a chatty service never blocks on a full pipe.
    """

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, startup_timeout_s: float = 90.0,
                 health_path: str = "/healthz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [arg.replace("{port}", str(self.port)) for arg in args]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.startup_timeout_s = startup_timeout_s
        self.health_path = health_path
        self._log = tempfile.NamedTemporaryFile(prefix="videop2r-service-", suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "LocalService":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, *self.args], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"service exited with {code}:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(self.url + self.health_path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"service not healthy after {self.startup_timeout_s}s:\n{self.log_text()[-3000:]}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the service's process group (its worker processes too), SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def metric(self, series: str) -> float:
        """One series of /metrics, e.g. 'videop2r_judge_cache_hits_total{judge="openai"}'; 0 if absent."""
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")


def videop2r_service(*args: str, env: dict[str, str] | None = None) -> LocalService:
    """`videop2r serve <args>` on a free port (not started: use it as a context manager)."""
    return LocalService(["-m", "videop2r", "serve", *args, "--port", "{port}"], env=env)
