"""What the rollout server's route handlers share: the engine, its scheduler, media and metrics.

`create_app` builds one `RolloutState` and keeps it on ``app.state.rollout``; handlers get it
through the `rollout_state` dependency instead of closing over `create_app`'s locals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry

from services.rollout.engine import GenerationEngine
from services.rollout.media_sources import MediaSources
from services.rollout.prompt_job import JobResult, PromptJob
from services.rollout.scheduler import BatchScheduler
from videop2r.metrics import metric


@dataclass(frozen=True)
class RolloutMetrics:
    """The ``videop2r_rollout_*`` collectors of one registry."""

    requests_total: Any
    latency: Any
    generated: Any
    in_flight: Any
    weight_version: Any

    @classmethod
    def of(cls, registry: CollectorRegistry) -> RolloutMetrics:
        return cls(
            requests_total=metric("videop2r_rollout_requests_total", registry),
            latency=metric("videop2r_rollout_request_seconds", registry),
            generated=metric("videop2r_rollout_generated_tokens_total", registry),
            in_flight=metric("videop2r_rollout_in_flight", registry),
            weight_version=metric("videop2r_rollout_weight_version", registry),
        )


@dataclass
class RolloutState:
    """One server's engine, scheduler, media cache, metrics and settings."""

    engine: GenerationEngine
    scheduler: BatchScheduler
    media: MediaSources
    registry: CollectorRegistry
    metrics: RolloutMetrics
    model_name: str
    # -- characters above which a text field is refused before tokenizing (body_checks)
    max_text_chars: int
    max_batch_rows: int
    chat_max_tokens: int
    storage_config: Any = None
    shutting_down: bool = False

    def count_request(self, status: str) -> None:
        """One `/generate` request answered with `status` (``videop2r_rollout_requests_total``)."""
        self.metrics.requests_total.labels(status=status).inc()

    def publish_version(self) -> None:
        try:
            self.metrics.weight_version.set(float(self.engine.weight_version))
        except (TypeError, ValueError):
            self.metrics.weight_version.set(-1)  # a non-numeric version ("default")

    async def run_jobs(self, jobs: list[PromptJob]) -> list[JobResult]:
        """The jobs' results from the scheduler, counted as in flight meanwhile."""
        self.metrics.in_flight.inc()
        try:
            return await self.scheduler.submit(jobs)
        finally:
            self.metrics.in_flight.dec()


async def rollout_state(request: Request) -> RolloutState:
    """FastAPI dependency: the app's `RolloutState` (async, so it never takes a threadpool hop)."""
    return request.app.state.rollout
