"""services.limits under a real uvicorn on loopback: slow or partial requests are closed after their
timeout, connections over the cap are refused, and ordinary clients are unaffected (issue 16)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from services.limits import ServerLimits, uvicorn_settings
from videop2r.local_services import free_port

LIMITS = ServerLimits(header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=2.0, max_connections=8)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None,
                                           **uvicorn_settings(LIMITS)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_after(sock: socket.socket, limit_s: float = 5.0) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent before)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(limit_s)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


@pytest.mark.parametrize("sent", [b"", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le"])
def test_partial_headers_are_closed_after_the_header_timeout(url, sent):
    with _connect(url) as sock:
        sock.sendall(sent)
        waited, received = _closed_after(sock)
    assert 0.3 < waited < 2.0 and received == b""


def test_a_partial_body_gets_408_and_is_closed_after_the_body_timeout(url):
    with _connect(url) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        waited, received = _closed_after(sock)
    assert 0.3 < waited < 2.0 and received.startswith(b"HTTP/1.1 408"), received


def test_a_second_request_on_a_kept_alive_connection_has_its_own_header_deadline(url):
    with _connect(url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /heal")  # then stalls
        waited, _ = _closed_after(sock)
    assert waited < 2.0  # not the 2 s keep-alive: the header deadline


def test_connections_over_the_cap_are_refused_and_others_served_after_the_timeout(url):
    held = [_connect(url) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)
        with _connect(url) as extra:
            _, received = _closed_after(extra)
        assert received.startswith(b"HTTP/1.1 503"), received
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200


def test_slow_clients_do_not_stall_ordinary_ones(url):
    slow = [_connect(url) for _ in range(4)]
    for sock in slow:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    try:
        started = time.monotonic()
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(20):
                assert client.post("/echo", content=b"x" * 1000).json() == {"bytes": 1000}
        assert time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()
