"""Error answers of the rollout server, in SGLang 0.5.23's shapes (``http_server.py``).

``{"object": "error", "message", "type", "param", "code"}`` (`error_response`) for body
validation, the chat route and everything outside ``/generate``; ``{"error": {"message": ...}}``
for a ``/generate`` request that fails while it is processed (``_create_error_response``). The
``/generate`` schema gate's ``{"error": "<text>"}`` and a weight update's ``{"success": false, ...}``
are answered by their routes.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.rollout.jobs import RequestError
from services.rollout.prompt_job import InvalidJob
from videop2r.prompting import PromptError
from videop2r.rollout.media import MediaError

_KIND = {400: "BadRequest", 404: "NotFound", 500: "InternalServerError", 503: "ServiceUnavailable"}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"object": "error", "message": message, "type": _KIND.get(status, str(status)), "param": None,
                 "code": status},
    )


def validation_message(exc: RequestValidationError) -> str:
    """One line per problem, naming the field (``sampling_params.temperatur: Extra inputs ...``).

    Pydantic reports a union field once per alternative; the "wrong type" complaints of the
    alternatives that did not apply are dropped when a more specific error exists."""
    errors = list(exc.errors())
    specific = [error for error in errors if not str(error.get("type", "")).endswith("_type")]
    parts: list[str] = []
    for error in specific or errors:
        location = ".".join(
            str(item) for item in error.get("loc", ()) if item != "body" and "[" not in str(item)
        )
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        line = f"{location or 'body'}: {message}"
        if line not in parts:
            parts.append(line)
    return "; ".join(parts) or "invalid request"


def _counted_if_generate(request: Request) -> bool:
    """Count a refused ``/generate`` request as a 400; True if it was one."""
    if request.url.path != "/generate":
        return False
    request.app.state.rollout.count_request("400")
    return True


async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    _counted_if_generate(request)
    return error_response(400, validation_message(exc))


async def _refused(request: Request, exc: ValueError) -> JSONResponse:
    if _counted_if_generate(request):  # SGLang's _create_error_response shape
        return JSONResponse(status_code=400, content={"error": {"message": str(exc)}})
    return error_response(400, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """400s for an invalid body and for a request refused while it is processed."""
    app.add_exception_handler(RequestValidationError, _invalid_body)
    # InvalidJob: refused by the engine's checks before it joined a batch
    for refusal in (RequestError, MediaError, PromptError, InvalidJob):
        app.add_exception_handler(refusal, _refused)
