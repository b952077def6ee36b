"""What both reward services put in front of their routes: body limit, bearer auth, request metrics,
and 4xx answers with a readable message for malformed or invalid bodies.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videop2r.metrics import metric

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/metrics"})


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(body).encode()
    length = str(len(payload)).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", length), *headers],
    })
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = {"error": f"request body exceeds the limit of {self.max_bytes} bytes"}
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, too_big)
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
                await _send_json(send, 413, too_big)
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


class BearerAuthMiddleware:
    """Require `Authorization: Bearer <token>` except on health and metrics. The token is never logged."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, presented = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(presented.strip(), self._token):
            challenge = ((b"www-authenticate", b"Bearer"),)
            await _send_json(send, 401, {"error": "missing or wrong bearer token"}, challenge)
            return
        await self.app(scope, receive, send)


class RequestMetricsMiddleware:
    """Count and time every /v1/ request by service and status; gauge the ones in progress."""

    def __init__(self, app: ASGIApp, service: str, registry: CollectorRegistry | None) -> None:
        self.app = app
        self.service = service
        self._requests = metric("videop2r_reward_requests_total", registry)
        self._seconds = metric("videop2r_reward_request_seconds", registry).labels(service=service)
        self._in_flight = metric("videop2r_reward_in_flight", registry).labels(service=service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self._in_flight.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self._in_flight.dec()
            self._seconds.observe(time.perf_counter() - started)
            self._requests.labels(service=self.service, status=str(status)).inc()


def _field_path(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    return ".".join(location) or "body"


def install_edges(
    app: FastAPI,
    *,
    service: str,
    registry: CollectorRegistry,
    max_body_bytes: int,
    token: str | None,
) -> None:
    """Error handlers, /metrics, and the middleware stack (outermost first: metrics, auth, body limit)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            message = "request body is not valid JSON"
            status = 400
        else:
            shown = "; ".join(f"{_field_path(error)}: {error.get('msg', 'invalid')}" for error in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            message = f"invalid request: {shown}{more}"
            status = 422
        log.info("%s: rejected a request: %s", service, message)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s: request failed", service)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # add_middleware wraps: the last one added is the outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if token:
        app.add_middleware(BearerAuthMiddleware, token=token)
    app.add_middleware(RequestMetricsMiddleware, service=service, registry=registry)
