"""reward-judge: `POST /v1/judge` runs a batch through the `JudgePipeline` (hack guard, cache,
bounded concurrent judge calls). I/O-bound: one event loop, many calls in flight.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from services.reward.middleware import install_edges
from videop2r.config import VideoP2RConfig
from videop2r.metrics import metric
from videop2r.rewards.judges import JudgeBatch, JudgeBatchResult, JudgePipeline

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

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        body = {"status": "ok" if ready else "starting", "service": SERVICE, "judge": pipeline.judge.name}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.post("/v1/judge", response_model=JudgeBatchResult)
    async def judge(batch: JudgeBatch) -> JudgeBatchResult:
        results = await pipeline.judge_batch(batch.items)
        items_total.inc(len(results))
        return JudgeBatchResult(results=results)

    install_edges(app, service=SERVICE, registry=registry, max_body_bytes=reward.max_body_bytes, token=token)
    return app
