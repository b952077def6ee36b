"""reward-judge: `POST /v1/judge` runs a batch through the `JudgePipeline` (hack guard, cache,
bounded concurrent judge calls). I/O-bound: one event loop, many calls in flight; parsing,
validation and the answer's serialisation run in threads, so `/healthz` answers meanwhile.
Errors are `ErrorBody`s (services.reward.payload).
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from services.reward.middleware import install_edges, validation_message
from services.reward.payload import ERROR_RESPONSES, BadBody, document_models, openapi_body, parse_body
from videop2r.config import VideoP2RConfig
from videop2r.metrics import metric
from videop2r.rewards.judges import JudgeBatch, JudgeBatchResult, JudgePipeline


class JudgeHealth(BaseModel):
    status: Literal["ok", "starting"]
    service: str
    judge: str


def _batch_of(raw: bytes, max_field_chars: int, max_items: int) -> JudgeBatch:
    """The validated body (in a worker thread), or `BadBody`."""
    payload: Any = parse_body(raw, max_field_chars)
    items = payload.get("items") if isinstance(payload, dict) else None
    if isinstance(items, list) and len(items) > max_items:
        raise BadBody(422, "invalid_request", f"invalid request: items: {len(items)} items, more than the "
                      f"limit of {max_items} per request")
    try:
        return JudgeBatch.model_validate(payload)
    except ValidationError as exc:
        raise BadBody(422, "invalid_request", validation_message(exc.errors())) from None

SERVICE = "reward-judge"


def create_judge_app(
    config: VideoP2RConfig,
    *,
    kind: str | None = None,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
) -> FastAPI:
    """The reward-judge app (the `reward` section configures it); `kind` overrides `reward.judge`,
    `token` defaults to the env var named by `reward.auth_token_env`."""
    reward = config.reward
    registry = registry or CollectorRegistry()
    token = token if token is not None else os.environ.get(reward.auth_token_env) or None
    pipeline = JudgePipeline.from_config(reward, kind, registry=registry)
    items_total = metric("videop2r_reward_items_total", registry).labels(service=SERVICE)
    ready = False

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal ready
        await pipeline.start()  # the embedding judge loads its model here, before /healthz says ok
        ready = True
        try:
            yield
        finally:
            await pipeline.close()

    app = FastAPI(title="videop2r reward-judge", lifespan=lifespan)
    app.state.pipeline = pipeline

    @app.get("/healthz", response_model=None, responses={200: {"model": JudgeHealth}, 503: {"model": JudgeHealth}})
    async def healthz() -> JSONResponse:
        body = {"status": "ok" if ready else "starting", "service": SERVICE, "judge": pipeline.judge.name}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.post("/v1/judge", response_model=None, openapi_extra=openapi_body(JudgeBatch),
              responses={200: {"model": JudgeBatchResult}, **ERROR_RESPONSES})
    async def judge(request: Request) -> Response:
        """Body ``{"items": [JudgeItem, ...]}`` -> ``{"results": [JudgeResult, ...]}``."""
        raw = await request.body()
        batch = await asyncio.to_thread(_batch_of, raw, reward.max_field_chars, reward.max_items)
        results = await pipeline.judge_batch(batch.items)
        items_total.inc(len(results))
        # ASCII JSON: a judge's reason with a lone surrogate cannot fail the answer
        body = await asyncio.to_thread(json.dumps, JudgeBatchResult(results=results).model_dump())
        return Response(body, media_type="application/json")

    document_models(app, [JudgeBatch])

    install_edges(app, service=SERVICE, registry=registry, max_body_bytes=reward.max_body_bytes, token=token)
    return app
