"""The reward services' one error body, and the checks every request body passes before a model sees it.

Every error either service answers (400, 401, 404, 405, 408, 413, 422, 500, 503) has the body
``{"error": "<message>", "code": "<code>"}`` (`ErrorBody`); `code` is stable and is what a client
should branch on, the message is for people (clipped to `MAX_MESSAGE_CHARS`, and so is every log
line quoting a request). Bodies are parsed off the event loop (`parse_body`, in a thread): JSON
only, nesting at most `MAX_DEPTH` deep, every string and key valid Unicode that encodes as UTF-8
(no lone surrogates) and at most `max_field_chars` long.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel

MAX_MESSAGE_CHARS = 500
MAX_DEPTH = 32

ErrorCode = Literal[
    "invalid_json", "unauthorized", "not_found", "method_not_allowed", "request_timeout",
    "body_too_large", "invalid_request", "internal_error", "not_ready",
]
CODE_OF_STATUS: dict[int, ErrorCode] = {
    400: "invalid_json", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 413: "body_too_large", 422: "invalid_request", 500: "internal_error",
    503: "not_ready",
}


class ErrorBody(BaseModel):
    """The body of every error answer of the reward services."""

    error: str
    code: ErrorCode


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in CODE_OF_STATUS.items() if status not in (404, 405, 503)
}


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters (saying how much was cut), safe to log or to answer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def error_response(status: int, message: str, code: ErrorCode | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The `ErrorBody` answer; ASCII JSON, so no message can fail to encode."""
    body = {"error": clip(message), "code": code or CODE_OF_STATUS.get(status, "internal_error")}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class BadBody(ValueError):
    """A request body refused before validation: `status`, `code` and a message."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def response(self) -> Response:
        return error_response(self.status, str(self), self.code)


def _check_text(text: str, where: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise BadBody(422, "invalid_request", f"{where}: {len(text)} characters, more than the limit of {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadBody(422, "invalid_request",
                      f"{where}: not valid Unicode (lone surrogate at character {exc.start})") from None


def check_tree(data: Any, max_field_chars: int, max_depth: int = MAX_DEPTH) -> None:
    """Depth, UTF-8 and length checks over parsed JSON, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, str, int]] = [(data, "body", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > max_depth:
            raise BadBody(422, "invalid_request", f"{where}: nested more than {max_depth} levels deep")
        if isinstance(node, str):
            _check_text(node, where, max_field_chars)
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_text(key, f"{where} (a key)", max_field_chars)
                stack.append((value, f"{where}.{key[:40]}" if key.isprintable() else f"{where}.?", depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{where}.{index}", depth + 1) for index, value in enumerate(node))


def parse_body(raw: bytes, max_field_chars: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parsed JSON that passed `check_tree`, or `BadBody` (400 not JSON, 422 too deep or bad text)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadBody(422, "invalid_request", f"body: nested more than {max_depth} levels deep") from None
    except (ValueError, UnicodeDecodeError):
        raise BadBody(400, "invalid_json", "request body is not valid JSON") from None
    check_tree(data, max_field_chars, max_depth)
    return data


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as a route's JSON body when the route reads the raw body
    itself (parsed off the event loop); `document_models` adds the schema to the components."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def document_models(app: Any, models: list[type[BaseModel]]) -> None:
    """Add `models` (and what they reference) to the app's OpenAPI components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in found.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, found)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
