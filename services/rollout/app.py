"""FastAPI app of the embedded rollout server: the subset of SGLang's HTTP API training needs.

Native API (paths and fields as SGLang 0.5.x ``python/sglang/srt/entrypoints/http_server.py``):

- ``GET /health`` — 200 once the model is loaded (503 while shutting down);
  ``GET /health_generate`` — 200 if a one-token generation completes within 20 s.
- ``GET /get_model_info`` (alias ``/model_info``) — model_path, tokenizer_path, is_generation,
  weight_version, model_type, architectures; ``GET /get_weight_version``; ``GET /get_server_info``.
- ``POST /generate`` — ``services.rollout.jobs`` (request and response shapes).
- ``POST /update_weights_from_disk`` — ``{model_path, weight_version?, load_format?}``: reloads
  from a local directory between batches (anything else: 400, as SGLang's loader); ``{success, message, num_paused_requests}``,
  400 (old weights kept) on failure.
- ``GET|POST /flush_cache`` — drops the decoded-media cache.
- ``GET /v1/models``, ``POST /v1/chat/completions`` — OpenAI-compatible (``services.rollout.chat``).
- ``GET /metrics`` — Prometheus (``videop2r_rollout_*``).

Errors have SGLang 0.5.23's four shapes, by where a request fails (``http_server.py``):
``{"error": "<text>"}`` from the ``/generate`` schema gate (``services.rollout.contract``);
``{"error": {"message": ...}}`` from processing a ``/generate`` request (sampling-param checks,
media, prompt; ``_create_error_response``); ``{"object": "error", "message", "type", "param",
"code"}`` from body validation and every chat error; ``{"success": false, "message",
"num_paused_requests"}`` from a failed weight update. All 400, naming the field.

Modules: ``state`` (what the handlers share), ``routes/`` (one APIRouter per concern: health,
info, generate, chat, weights, metrics), ``errors`` (the error shapes and exception handlers),
``body_checks`` (Unicode and text-length checks before tokenizing).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.limits import BodyLimitMiddleware
from services.rollout.body_checks import text_char_limit
from services.rollout.engine import GenerationEngine
from services.rollout.errors import error_response, install_error_handlers
from services.rollout.media_sources import MediaSources
from services.rollout.routes import ROUTERS
from services.rollout.scheduler import BatchScheduler
from services.rollout.state import RolloutMetrics, RolloutState


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: RolloutState = app.state.rollout
    state.scheduler.start()
    state.publish_version()
    try:
        yield
    finally:
        state.shutting_down = True
        await state.scheduler.stop()


def create_app(engine: GenerationEngine, *, media: MediaSources | None = None, served_model_name: str | None = None,
               max_batch_rows: int = 64, chat_max_tokens: int = 512, storage_config: Any = None,
               registry: CollectorRegistry | None = None, max_body_bytes: int | None = None) -> FastAPI:
    """The app around a loaded engine. `registry`: Prometheus registry (default: a new one);
    `max_body_bytes`: bodies over it are refused (413) before parsing (services.limits)."""
    media = media or MediaSources(storage_config=storage_config)
    registry = registry or CollectorRegistry(auto_describe=True)
    state = RolloutState(
        engine=engine,
        scheduler=BatchScheduler(engine, max_batch_rows=max_batch_rows),
        media=media,
        registry=registry,
        metrics=RolloutMetrics.of(registry),
        model_name=served_model_name or engine.model_path,
        max_text_chars=text_char_limit(engine),
        max_batch_rows=max_batch_rows,
        chat_max_tokens=chat_max_tokens,
        storage_config=storage_config,
    )
    app = FastAPI(title="videop2r rollout (SGLang API)", lifespan=_lifespan)
    if max_body_bytes is not None:
        app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, render=error_response)
    app.state.rollout = state
    app.state.engine = engine
    app.state.scheduler = state.scheduler
    app.state.media = media
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
