"""reward-accuracy: `POST /v1/score` scores a batch of rollouts (format, Acc_t by problem type,
length, per process) with the rewards library, in a process pool sized to the pod's CPUs.

Input items are the input lines of `videop2r rewards score` (`ScoreRequest`); the results are
its output lines, in order. The service process only parses JSON, cuts the batch into chunks
and writes the answer; validation and scoring happen in the workers, so one event loop keeps
every core busy.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry

from services.reward.cpus import available_cpus
from services.reward.middleware import install_edges
from services.reward.scoring_pool import InvalidItems, ScoringPool
from videop2r.config import VideoP2RConfig
from videop2r.metrics import metric

SERVICE = "reward-accuracy"
log = logging.getLogger(__name__)


def _bad_request(status: int, message: str) -> JSONResponse:
    log.info("%s: rejected a request: %s", SERVICE, message)
    return JSONResponse({"error": message}, status_code=status)


def create_accuracy_app(
    config: VideoP2RConfig,
    *,
    workers: int | None = None,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
) -> FastAPI:
    """The reward-accuracy app; `workers` defaults to `reward.score_workers` or the pod's CPUs.

    Scoring uses the `reward` section (length ranges, bonus, tokenizer) and the `algorithm`
    section (reward ablations), as `ScoringSettings.from_config` reads them.
    """
    reward = config.reward
    registry = registry or CollectorRegistry()
    token = token if token is not None else os.environ.get(reward.auth_token_env) or None
    workers = workers or reward.score_workers or available_cpus()
    # plain data: the sections cross into the worker processes
    sections = {"reward": reward.model_dump(mode="json"),
                "algorithm": config.algorithm.model_dump(mode="json")}
    pool = ScoringPool(workers, sections)
    items_total = metric("videop2r_reward_items_total", registry).labels(service=SERVICE)
    skipped = metric("videop2r_samples_skipped_total", registry).labels(reason="scoring_error")
    ready = False

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal ready
        await pool.start()
        ready = True
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="videop2r reward-accuracy", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        body = {"status": "ok" if ready else "starting", "service": SERVICE, "workers": workers}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.post("/v1/score")
    async def score(request: Request) -> Response:
        """Body ``{"items": [ScoreRequest, ...]}`` -> ``{"results": [line, ...]}``."""
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _bad_request(400, "request body is not valid JSON")
        if not isinstance(payload, dict) or "items" not in payload:
            return _bad_request(422, 'invalid request: items: Field required (the body is {"items": [...]})')
        if set(payload) != {"items"}:
            extra = ", ".join(sorted(set(payload) - {"items"}))
            return _bad_request(422, f"invalid request: {extra}: Extra inputs are not permitted")
        items = payload["items"]
        if not isinstance(items, list):
            return _bad_request(422, "invalid request: items: Input should be a valid list")
        try:
            lines = await pool.score(items)
        except InvalidItems as exc:
            shown = "; ".join(exc.problems[:5])
            more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
            return _bad_request(422, f"invalid request: {shown}{more}")
        items_total.inc(len(lines))
        failed = sum(1 for line in lines if "error" in line)
        if failed:
            skipped.inc(failed)
        return Response(json.dumps({"results": lines}, allow_nan=False), media_type="application/json")

    install_edges(app, service=SERVICE, registry=registry, max_body_bytes=reward.max_body_bytes, token=token)
    return app
