"""What SFT and PA-GRPO share on the driver: clients, the held-out set, weight sync, evaluation.

A `StageRuntime` lives inside one `asyncio.Runner`, so the HTTP clients (and the rollout
client's background re-sync of stale endpoints) keep one event loop for the whole stage while
the rest of the driver stays synchronous (Ray calls block).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from videop2r.config import VideoP2RConfig
from videop2r.rewards import RewardShape, ScoringSettings
from videop2r.rewards.client import RewardClient
from videop2r.rollout import RolloutClient
from videop2r.train.evaluate import EvalResult, evaluate
from videop2r.train.group_rewards import GroupScorer
from videop2r.train.metrics_log import MetricsLog
from videop2r.train.report import append_eval
from videop2r.train.run import RunPaths
from videop2r.train.services_local import Endpoints

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (ray job stop, a pod eviction) takes the Ctrl-C path: clean shutdown, checkpoints intact."""

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. under a test runner thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class OpenedRun:
    """A stage's run, ready to start or resume: paths, the checkpoint to resume from, metrics, processor."""

    paths: RunPaths
    checkpoint: Any  # the `Checkpoint` resumed from, or None for a fresh start
    driver_state: dict[str, Any]
    rng_state: Any
    metrics: MetricsLog
    processor: Any


def open_run(config: VideoP2RConfig, stage: str, resume: bool) -> OpenedRun:
    """Check inputs, find the checkpoint to resume, restore this stage's metrics history, serve /metrics."""
    from videop2r.model import load_processor
    from videop2r.train.metrics_log import read_metrics, serve_metrics
    from videop2r.train.run import prepare_run

    paths = prepare_run(config, stage, config.model.path)
    checkpoint = paths.checkpoints.require_latest() if resume else None
    driver_state, rng_state = paths.checkpoints.driver_state(checkpoint) if checkpoint else ({}, None)
    metrics = MetricsLog(paths.run_dir, config.trainer.run_name, jsonl=config.metrics.jsonl,
                         tensorboard=config.metrics.tensorboard)
    # rows of other stages stay; this stage's rows are the ones the checkpoint vouches for
    kept = [r for r in read_metrics(metrics.path) if r.get("stage") not in (stage, f"{stage}_eval")]
    metrics.restore(kept + list(driver_state.get("metrics_history", [])))
    serve_metrics(config.metrics.port, config.metrics.host)
    processor = load_processor(config.model.path, config.storage)
    return OpenedRun(paths, checkpoint, driver_state, rng_state, metrics, processor)


def close_stage(learner: Any, runtime: "StageRuntime | None", feed: Any) -> None:
    """Tear a stage down in order: its clients, its data feed, then the learner workers."""
    try:
        if runtime is not None:
            runtime.close()
        if feed is not None:
            feed.close()
    finally:
        learner.shutdown()


def progress_bar(enabled: bool, **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(disable=not enabled, dynamic_ncols=True, **kwargs)


def reward_shape(config: VideoP2RConfig) -> RewardShape:
    return ScoringSettings.from_config(config).shape


def load_eval_samples(config: VideoP2RConfig) -> list[Any]:
    """The held-out samples (decoded once, in pack order, at most trainer.eval_max_samples)."""
    from videop2r.data.stream import ShardStream

    if not config.data.eval_uri:
        return []
    stream = ShardStream(config.data.eval_uri, config.data, config.storage, shuffle=False, epochs=1)
    limit = config.trainer.eval_max_samples or len(stream)
    samples = []
    for sample in stream:
        samples.append(sample)
        if len(samples) >= limit:
            break
    return samples


@dataclass
class StageRuntime:
    """Driver-side machinery of one stage (see the module docstring)."""

    config: VideoP2RConfig
    stage: str
    paths: RunPaths
    endpoints: Endpoints
    processor: Any
    metrics: MetricsLog
    runner: asyncio.Runner
    rollout: RolloutClient = field(init=False)
    scorer: GroupScorer = field(init=False)
    eval_samples: list[Any] = field(default_factory=list)
    blocked_token_ids: list[int] = field(default_factory=list)
    reward_fallbacks: int = 0

    def __post_init__(self) -> None:
        from videop2r.model import vision_token_ids

        self.blocked_token_ids = list(vision_token_ids(self.processor.tokenizer))

        async def clients() -> tuple[RolloutClient, RewardClient, RewardClient]:
            rollout = RolloutClient.from_config(self.config.rollout.model_copy(update={"endpoints": self.endpoints.rollout}))
            remote = RewardClient.from_config(self.config.model_copy(update={"reward": self.config.reward.model_copy(
                update={"accuracy_endpoints": self.endpoints.accuracy, "judge_endpoints": self.endpoints.judge})}))
            local = RewardClient(local_config=self.config)
            return rollout, remote, local

        self.rollout, self._remote_rewards, self._local_rewards = self.runner.run(clients())
        self.scorer = GroupScorer(self._remote_rewards, self._local_rewards, reward_shape(self.config),
                                  on_fallback=self._on_reward_fallback)

    def _on_reward_fallback(self, service: str, error: Exception) -> None:
        self.reward_fallbacks += 1

    def fault_counts(self) -> dict[str, float]:
        """Cumulative fault counters of this process, for the step rows of metrics.jsonl."""
        from videop2r.train.metrics_log import counter_total

        return {"faults/endpoint_failures": counter_total("videop2r_endpoint_failures_total"),
                "faults/reward_fallbacks": float(self.reward_fallbacks),
                "faults/samples_skipped": counter_total("videop2r_samples_skipped_total")}

    def close(self) -> None:
        async def close_all() -> None:
            await self.rollout.aclose()
            await self._remote_rewards.aclose()
            await self._local_rewards.aclose()

        with contextlib.suppress(Exception):
            self.runner.run(close_all())

    # -- weights

    def sync_weights(self, uri: str, version: int) -> None:
        """Make the rollout endpoints serve the weights published at `uri` as `version`."""
        results = self.runner.run(self.rollout.update_weights(uri, str(version)))
        failed = [r for r in results if not r.success]
        for result in failed:
            log.warning("rollout %s did not take weights %s: %s (re-synced in the background)",
                        result.endpoint, version, result.message)

    # -- evaluation

    def evaluate(self, tag: str, step: int, *, final: bool = False, model: str = "",
                 stage_seconds: float | None = None) -> EvalResult | None:
        """Greedy held-out evaluation of the weights the rollout endpoints serve now; recorded in
        evals.jsonl (report rows) and metrics.jsonl (plots)."""
        if not self.eval_samples:
            return None
        bar = progress_bar(self.config.metrics.progress, total=len(self.eval_samples), desc=f"eval {tag}",
                           leave=False, unit="sample")
        try:
            result = self.runner.run(evaluate(
                self.rollout, self.scorer, self.processor, self.eval_samples,
                max_new_tokens=self.config.rollout.max_new_tokens, blocked_token_ids=self.blocked_token_ids,
                progress=bar))
        finally:
            bar.close()
        row = {"stage": tag, "step": step, "final": final, "model": model, "time": time.time(), **result.as_row()}
        if stage_seconds is not None:
            row["stage_seconds"] = stage_seconds
        append_eval(self.paths.run_dir, row)
        self.metrics.log(f"{self.stage}_eval", step, {**result.as_metrics(), "eval/seconds": result.seconds,
                                        **{f"eval/by_question/{k}": v for k, v in result.by_question.items()}})
        log.info("eval %s step %d: reasoning accuracy %.1f%%, perception sufficiency %.1f%%, format %.1f%% "
                 "(%d samples, %.0fs) %s", tag, step, 100 * result.reasoning_accuracy,
                 100 * result.perception_sufficiency, 100 * result.format_rate, result.n, result.seconds,
                 {k: round(100 * v) for k, v in result.by_question.items()})
        return result
