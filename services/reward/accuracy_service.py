"""reward-accuracy: `POST /v1/score` scores a batch of rollouts (format, Acc_t by problem type,
length, per process) with the rewards library, in a process pool sized to the pod's CPUs.

Input items are the input lines of `videop2r rewards score` (`ScoreRequest`); the results are
its output lines, in order. The service process only parses JSON (in a thread, with the checks
of `services.reward.payload`), cuts the batch into chunks and writes the answer; validation and
scoring happen in the workers, so the event loop (and `/healthz`) never waits on them. Errors
are `ErrorBody`s; an unknown problem_type is a 422, an item over the scoring budget an error line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from services.reward.cpus import available_cpus
from services.reward.middleware import install_edges
from services.reward.payload import ERROR_RESPONSES, BadBody, document_models, openapi_body, parse_body
from services.reward.scoring_pool import InvalidItems, ScoringPool
from videop2r.config import VideoP2RConfig
from videop2r.metrics import metric
from videop2r.rewards import ScoreRequest

SERVICE = "reward-accuracy"
log = logging.getLogger(__name__)


class ScoreBatch(BaseModel):
    """Body of `POST /v1/score` (validated item by item in the scoring workers)."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScoreRequest] = Field(max_length=100_000)


class ProcessComponents(BaseModel):
    """Named reward components of one process (accuracy, length_reward, total once accuracy is known)."""

    accuracy: float | None = None
    format: int
    length: int
    length_reward: float | None = None
    total: float | None = None


class ScoredLine(BaseModel):
    id: StrictStr | StrictInt
    perception: ProcessComponents
    reasoning: ProcessComponents


class FailedLine(BaseModel):
    """An item that could not be scored (the scorer raised, or it was over the compute budget)."""

    id: StrictStr | StrictInt
    error: str


class ScoreResults(BaseModel):
    results: list[ScoredLine | FailedLine]


class AccuracyHealth(BaseModel):
    status: Literal["ok", "starting"]
    service: str
    workers: int


def _items_of(payload: Any, max_items: int) -> list[Any]:
    if not isinstance(payload, dict) or "items" not in payload:
        raise BadBody(422, "invalid_request", 'invalid request: items: Field required (the body is {"items": [...]})')
    if set(payload) != {"items"}:
        extra = ", ".join(sorted(ascii(key)[:60] for key in set(payload) - {"items"})[:5])
        raise BadBody(422, "invalid_request", f"invalid request: {extra}: Extra inputs are not permitted")
    items = payload["items"]
    if not isinstance(items, list):
        raise BadBody(422, "invalid_request", "invalid request: items: Input should be a valid list")
    if len(items) > max_items:
        raise BadBody(422, "invalid_request", f"invalid request: items: {len(items)} items, more than the "
                      f"limit of {max_items} per request")
    return items


@dataclass
class _Scoring:
    """What the handlers share, kept on ``app.state.scoring``: the pool, settings and counters."""

    reward: Any  # the config's `reward` section
    pool: ScoringPool
    workers: int
    items_total: Any
    scoring_errors: Any
    over_budget: Any
    ready: bool = False

    @classmethod
    def create(cls, reward: Any, pool: ScoringPool, workers: int, registry: CollectorRegistry) -> _Scoring:
        """The counters are labelled here, so `/metrics` shows them at 0 before the first batch."""
        items_total = metric("videop2r_reward_items_total", registry).labels(service=SERVICE)
        skipped = metric("videop2r_samples_skipped_total", registry)
        return cls(reward, pool, workers, items_total, scoring_errors=skipped.labels(reason="scoring_error"),
                   over_budget=skipped.labels(reason="over_budget"))

    def count(self, lines: list[dict[str, Any]], over: int) -> None:
        """Scored items, error lines (`scoring_error`) and items over the budget (`over_budget`)."""
        self.items_total.inc(len(lines))
        failed = sum(1 for line in lines if "error" in line)
        if failed - over:
            self.scoring_errors.inc(failed - over)
        if over:
            self.over_budget.inc(over)
            log.warning("%s: %d item(s) over the scoring budget of %d cells", SERVICE, over,
                        self.reward.score_budget_cells)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    scoring: _Scoring = app.state.scoring
    await scoring.pool.start()
    scoring.ready = True
    try:
        yield
    finally:
        scoring.pool.close()


router = APIRouter()


@router.get("/healthz", response_model=None, responses={200: {"model": AccuracyHealth},
                                                        503: {"model": AccuracyHealth}})
async def healthz(request: Request) -> JSONResponse:
    scoring: _Scoring = request.app.state.scoring
    body = {"status": "ok" if scoring.ready else "starting", "service": SERVICE, "workers": scoring.workers}
    return JSONResponse(body, status_code=200 if scoring.ready else 503)


@router.post("/v1/score", response_model=None, openapi_extra=openapi_body(ScoreBatch),
             responses={200: {"model": ScoreResults}, **ERROR_RESPONSES})
async def score(request: Request) -> Response:
    """Body ``{"items": [ScoreRequest, ...]}`` -> ``{"results": [line, ...]}``."""
    scoring: _Scoring = request.app.state.scoring
    reward = scoring.reward
    raw = await request.body()
    items = _items_of(await asyncio.to_thread(parse_body, raw, reward.max_field_chars), reward.max_items)
    try:
        lines, over = await scoring.pool.score_counted(items)
    except InvalidItems as exc:
        shown = "; ".join(exc.problems[:5])
        more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
        raise BadBody(422, "invalid_request", f"invalid request: {shown}{more}") from None
    scoring.count(lines, over)
    body = await asyncio.to_thread(json.dumps, {"results": lines}, allow_nan=False)
    return Response(body, media_type="application/json")


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
    app = FastAPI(title="videop2r reward-accuracy", lifespan=_lifespan)
    app.state.scoring = _Scoring.create(reward, ScoringPool(workers, sections), workers, registry)
    app.include_router(router)
    document_models(app, [ScoreBatch])
    install_edges(app, service=SERVICE, registry=registry, max_body_bytes=reward.max_body_bytes, token=token)
    return app
