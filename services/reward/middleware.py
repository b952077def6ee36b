"""What both reward services put in front of their routes: body limit, bearer auth, request metrics,
and every error answered as the one `ErrorBody` (services.reward.payload) with a readable message.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.limits import BodyLimitMiddleware
from services.reward.payload import BadBody, clip, error_response
from videop2r.metrics import metric

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/metrics"})


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
            response = error_response(401, "missing or wrong bearer token", headers={"www-authenticate": "Bearer"})
            await response(scope, receive, send)
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
    location = [str(part)[:60] for part in error.get("loc", ()) if part != "body"]
    return ".".join(location) or "body"


def validation_message(errors: list[Any], prefix: str = "") -> str:
    """ "invalid request: items.0.id: Input should be ...; ..." for pydantic errors (five at most)."""
    shown = "; ".join(f"{prefix}{_field_path(error)}: {error.get('msg', 'invalid')}" for error in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"invalid request: {shown}{more}"


def install_edges(
    app: FastAPI,
    *,
    service: str,
    registry: CollectorRegistry,
    max_body_bytes: int,
    token: str | None,
) -> None:
    """Error handlers, /metrics, and the middleware stack (outermost first: metrics, auth, body limit)."""

    def refused(status: int, message: str, code: Any = None) -> Response:
        log.info("%s: rejected a request: %s", service, clip(message))
        return error_response(status, message, code)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return refused(400, "request body is not valid JSON")
        return refused(422, validation_message(errors))

    @app.exception_handler(BadBody)
    async def bad_body(request: Request, exc: BadBody) -> Response:
        return refused(exc.status, str(exc), exc.code)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:  # 404, 405: same body shape
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s: request failed", service)
        return error_response(500, f"internal error: {type(exc).__name__}")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # add_middleware wraps: the last one added is the outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, render=error_response)
    if token:
        app.add_middleware(BearerAuthMiddleware, token=token)
    app.add_middleware(RequestMetricsMiddleware, service=service, registry=registry)
