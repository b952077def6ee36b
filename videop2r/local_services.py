"""The embedded rollout server and both reward services as real local processes on 127.0.0.1.

Used when the config names no endpoints (the laptop/demo path) and by the tests: each service
is the same `videop2r serve ...` command a pod runs, started as a child process on a free port,
waited for on its health path, and stopped (SIGTERM, then SIGKILL) on exit. The driver then
talks to them over HTTP exactly as it talks to pods in a cluster.

`LocalService` / `videop2r_service` wrap the same process handling as a context manager with a
free-port substitution and a /metrics reader, for the integration tests and the benches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


class ServiceStartError(RuntimeError):
    """A local service did not become healthy; the message carries the tail of its log."""


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the driver dies, even by SIGKILL (Linux), so no server is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    """One `videop2r serve ...` child process."""

    name: str
    argv: list[str]
    port: int
    health_path: str
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        child_env = {**os.environ, **(env or {})}
        # new session: a Ctrl-C on the driver's terminal reaches the driver only, which then
        # stops its children in order (and a test can kill exactly this process group)
        self.process = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=child_env, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        out.close()

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + self.health_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ServiceStartError(f"{self.name} not healthy after {timeout_s:.0f}s: {self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crashed pod (tests use it to kill a service mid-run)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _videop2r(*args: str) -> list[str]:
    return [sys.executable, "-m", "videop2r", *args]


def rollout_service(model_dir: str, log_dir: Path, name: str = "rollout", extra: list[str] | None = None) -> ServiceProcess:
    port = free_port()
    argv = _videop2r("serve", "rollout", "--model", model_dir, "--host", "127.0.0.1", "--port", str(port), *(extra or []))
    return ServiceProcess(name, argv, port, "/health", log_dir / f"{name}.log")


def accuracy_service(log_dir: Path, name: str = "reward-accuracy", extra: list[str] | None = None) -> ServiceProcess:
    port = free_port()
    argv = _videop2r("serve", "reward-accuracy", "--host", "127.0.0.1", "--port", str(port), *(extra or []))
    return ServiceProcess(name, argv, port, "/healthz", log_dir / f"{name}.log")


def judge_service(log_dir: Path, judge: str = "evidence", name: str = "reward-judge",
                  extra: list[str] | None = None) -> ServiceProcess:
    port = free_port()
    argv = _videop2r("serve", "reward-judge", "--host", "127.0.0.1", "--port", str(port), "--judge", judge,
                     *(extra or []))
    return ServiceProcess(name, argv, port, "/healthz", log_dir / f"{name}.log")


class LocalServices:
    """Start a set of services together, wait until all are healthy, stop them all on exit."""

    def __init__(self, services: list[ServiceProcess], start_timeout_s: float = 180.0,
                 env: dict[str, str] | None = None) -> None:
        self.services = services
        self.start_timeout_s = start_timeout_s
        self.env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    **(env or {})}

    def start(self) -> "LocalServices":
        """Launch every service (they load in parallel; `wait_healthy` waits for them)."""
        try:
            for service in self.services:
                log.info("starting %s on port %d (log: %s)", service.name, service.port, service.log_path)
                service.start(self.env)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self) -> None:
        try:
            for service in self.services:
                service.wait_healthy(self.start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> "LocalServices":
        self.start()
        self.wait_healthy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def urls(self, prefix: str) -> list[str]:
        """URLs of the services whose name starts with `prefix` (e.g. "rollout")."""
        return [s.url for s in self.services if s.name.startswith(prefix)]

    def by_name(self, name: str) -> ServiceProcess:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


@dataclass
class Endpoints:
    """Where the driver sends rollouts and rewards (empty reward lists = score in-process)."""

    rollout: list[str]
    accuracy: list[str]
    judge: list[str]
    local: LocalServices | None = None

    def wait_ready(self) -> None:
        """Block until the local services (if any) answer their health checks."""
        if self.local is not None:
            self.local.wait_healthy()


@contextlib.contextmanager
def services_for(config, model_path: str, log_dir: Path, config_file: Path | None = None):  # noqa: ANN001
    """Endpoints of `config`, starting local processes for the ones it leaves empty.

    Rollout: the configured endpoints, else one local embedded server on `model_path`. Rewards: the
    configured endpoints, else local services when `trainer.local_reward_services`, else in-process.
    Local reward services read `config_file` (the run's resolved config), so they score exactly
    as the driver would.
    """
    services: list[ServiceProcess] = []
    config_args = ["--config", str(config_file)] if config_file else []
    if not config.rollout.endpoints:
        import json

        from videop2r.rollout.sglang_release import mm_process_config

        # the pod's video config: the embedded server samples and sizes frames as the learner does
        video = ["--mm-process-config", json.dumps(mm_process_config(config.data))]
        services.append(rollout_service(model_path, log_dir, extra=[*video, *config.trainer.local_rollout_args]))
    start_rewards = config.trainer.local_reward_services
    if start_rewards and not config.reward.accuracy_endpoints:
        services.append(accuracy_service(log_dir, extra=["--workers", "1", *config_args]))
    if start_rewards and not config.reward.judge_endpoints:
        services.append(judge_service(log_dir, judge=config.reward.judge, extra=config_args))
    if not services:
        yield Endpoints(list(config.rollout.endpoints), list(config.reward.accuracy_endpoints),
                        list(config.reward.judge_endpoints))
        return
    local = LocalServices(services).start()  # the caller overlaps their start-up with its own
    try:
        yield Endpoints(
            list(config.rollout.endpoints) or local.urls("rollout"),
            list(config.reward.accuracy_endpoints) or local.urls("reward-accuracy"),
            list(config.reward.judge_endpoints) or local.urls("reward-judge"),
            local,
        )
    finally:
        local.stop()


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
