"""Limits every server of the project applies, so one client cannot hurt the others:

- a body-size cap, checked from Content-Length before any byte is read and again while reading
  (chunked bodies), before the app parses or tokenizes anything (`BodyLimitMiddleware`);
- a read timeout for a request's headers (from the connection's first byte, or from the end of
  the previous response) and one for its body, and a cap on open connections per server
  (`guarded_h11_protocol`, an h11 protocol for uvicorn: a partial request held open past its
  timeout is closed, a connection over the cap is answered 503 and closed at once);
- header size (h11's incomplete-event limit) and the keep-alive idle time (`uvicorn_settings`).

The values come from the config's `server` section; the chart sets the same ones (values.yaml
`serverLimits`). uvicorn runs h11 here (httptools is not installed), so that is the protocol
guarded; `uvicorn_settings` pins `http` to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# (status, message) -> the server's own error response (each API keeps its documented shape)
ErrorRenderer = Callable[[int, str], Response]


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits of one server (see the module docstring)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 5.0
    max_connections: int = 256
    max_header_bytes: int = 16 * 1024

    @classmethod
    def from_config(cls, server: Any) -> "ServerLimits":
        """From the config's `server` section (any object with the same attribute names)."""
        return cls(**{name: getattr(server, name) for name in cls.__dataclass_fields__})


def plain_error(status: int, message: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain")


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int, render: ErrorRenderer = plain_error) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.render(413, f"request body exceeds the limit of {self.max_bytes} bytes")
        response.headers["connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_BUSY_BODY = b"too many connections\n"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
         b"content-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header/body read deadlines and a connection cap (class attrs)."""

    limits: ServerLimits = ServerLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading: str = ""
        if len(self.server_state.connections) >= self.limits.max_connections:
            log.warning("refused a connection: %d open (the cap)", len(self.server_state.connections))
            transport.write(_BUSY)
            transport.close()
            self.transport = transport
            return
        super().connection_made(transport)
        self._watch("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._unwatch()
        if self.flow is None:  # refused at connection_made: nothing was set up
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.flow is None:  # refused at connection_made
            return
        super().data_received(data)
        if self.transport.is_closing():
            self._unwatch()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._reading != "headers" and self.conn.our_state is h11.IDLE:
                self._watch("headers")  # a new request began: its headers have their own deadline
        elif state is h11.SEND_BODY:
            if self._reading != "body":
                self._watch("body")
        else:
            self._unwatch()

    def on_response_complete(self) -> None:
        self._unwatch()  # between requests uvicorn's keep-alive timer watches the connection
        super().on_response_complete()

    def _watch(self, part: str) -> None:
        self._unwatch()
        timeout = self.limits.header_timeout_s if part == "headers" else self.limits.body_timeout_s
        self._reading = part
        self._read_timer = self.loop.call_later(timeout, self._read_timed_out, part)

    def _unwatch(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
        self._read_timer = None
        self._reading = ""

    def _read_timed_out(self, part: str) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout_s if part == "headers" else self.limits.body_timeout_s
        log.info("closed a connection from %s: request %s not received within %gs", self.client, part, timeout)
        if part == "body" and self.cycle is not None and not self.cycle.response_started:
            try:  # the request line is known: say why before closing
                self.transport.write(self.conn.send(h11.Response(
                    status_code=408, headers=[(b"content-length", b"0"), (b"connection", b"close")])))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
        self.transport.close()


def guarded_h11_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """An h11 protocol class for `uvicorn.Config(http=...)` enforcing `limits`."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"limits": limits})


def uvicorn_settings(limits: ServerLimits) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` that apply `limits`."""
    return {
        "http": guarded_h11_protocol(limits),
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "timeout_keep_alive": limits.keep_alive_s,
    }
