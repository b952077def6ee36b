"""The one skeleton of a stage, shared by SFT and PA-GRPO, and its driver-side machinery.

`running_stage` is everything around a stage's step loop: the run opened (inputs checked,
resume point found), SIGTERM taken as Ctrl-C, Ray, the local services, the clients, the learner
workers (resumed from the checkpoint), the data feed, and the teardown in order — each part
closed even when an earlier one fails, every failure logged. `StageRuntime` holds the clients,
the held-out set, weight sync, evaluation, and checkpoint and model publishing.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from videop2r.config import VideoP2RConfig
from videop2r.local_services import Endpoints
from videop2r.rewards import RewardShape, ScoringSettings
from videop2r.rewards.client import RewardClient
from videop2r.rollout import RolloutClient
from videop2r.train.checkpoint import Checkpoint
from videop2r.train.evaluate import EvalResult, evaluate
from videop2r.train.feed import SampleFeed, SkipRule
from videop2r.train.group_rewards import GroupScorer
from videop2r.train.metrics_log import MetricsLog
from videop2r.train.report import append_eval
from videop2r.train.run import RunPaths, join_uri
from videop2r.train.weight_sync import SyncReport, WeightSync, download_export, version_dir

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (ray job stop, a pod eviction) takes the Ctrl-C path: clean shutdown, checkpoints intact."""

    def interrupt(signum: int, frame: Any) -> None:
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
    metrics = MetricsLog(paths.run_dir, config.trainer.run_name, loggers=config.trainer.loggers, stage=stage,
                         project=config.trainer.project_name, config=config.model_dump(mode="json"))
    # rows of other stages stay; this stage's rows are the ones the checkpoint vouches for
    kept = [r for r in read_metrics(metrics.path) if r.get("stage") not in (stage, f"{stage}_eval")]
    metrics.restore(kept + list(driver_state.get("metrics_history", [])))
    serve_metrics(config.metrics.port, config.metrics.host)
    processor = load_processor(config.model.path, config.storage)
    return OpenedRun(paths, checkpoint, driver_state, rng_state, metrics, processor)


def close_stage(learner: Any, runtime: StageRuntime | None, feed: Any) -> BaseException | None:
    """Tear a stage down in order: its clients, its data feed, then the learner workers.

    Every part is closed even when an earlier one fails; each failure is logged with the part it
    came from. Returns the first failure, for the caller to raise when the stage itself succeeded.
    """
    parts = (("the stage's clients", runtime.close if runtime is not None else None),
             ("the data feed", feed.close if feed is not None else None),
             ("the learner workers", learner.shutdown))
    first: BaseException | None = None
    for part, close in parts:
        if close is None:
            continue
        try:
            close()
        except Exception as exc:
            log.exception("teardown: closing %s failed", part)
            first = first or exc
    return first


@dataclass
class Stage:
    """A running stage, as `running_stage` yields it."""

    run: OpenedRun
    runtime: StageRuntime
    learner: Any
    feed: SampleFeed
    started: float  # time.time() when the run was opened: the final evaluation's stage_seconds

    @property
    def resumed(self) -> bool:
        return self.run.checkpoint is not None

    @property
    def start_step(self) -> int:
        """The last step already done: the checkpoint's step on a resume, else 0."""
        return self.run.checkpoint.step if self.run.checkpoint is not None else 0

    def seconds(self) -> float:
        return time.time() - self.started


@contextlib.contextmanager
def running_stage(config: VideoP2RConfig, name: str, resume: bool, *, settings: Callable[[VideoP2RConfig], Any],
                  worker_cls: type, data_uri: str, prepare: Callable[[Any, Any], Any],
                  skip: SkipRule) -> Iterator[Stage]:
    """Run the body of stage `name` inside its skeleton (see the module docstring).

    `settings(config)` are the learner's settings, `worker_cls` its Ray worker; the feed reads
    `data_uri` with `prepare(processor, sample)` and `skip`. A resume loads the learner's state;
    what else a resume restores is the stage's. On a normal exit the report is written and the
    metrics log closed; on an error or Ctrl-C the teardown still runs (published checkpoints stay
    valid) and the stage's own error is the one raised.
    """
    from videop2r.learner.group import Learner
    from videop2r.local_services import services_for
    from videop2r.train.cluster import learner_placement, ray_session
    from videop2r.train.report import write_report

    trainer = config.trainer
    run = open_run(config, name, resume)  # before Ray or a server: bad input fails fast
    started = time.time()
    with sigterm_as_interrupt(), ray_session(trainer.ray_address, num_cpus=max(config.learner.num_workers, 2)), \
            services_for(config, config.model.path, run.paths.run_dir / "services", run.paths.config_file) \
            as endpoints, asyncio.Runner() as runner:
        learner = Learner(settings(config), config.learner.num_workers, worker_cls=worker_cls,
                          failure_grace_s=trainer.worker_failure_grace_s, process_on_nodes=learner_placement(config))
        runtime = feed = None
        try:
            endpoints.wait_ready()
            runtime = StageRuntime(config, name, run.paths, endpoints, run.processor, run.metrics, runner)
            runtime.eval_samples = load_eval_samples(config)
            feed = SampleFeed(config, data_uri, run.driver_state.get("cursor"), run.metrics.count_skip,
                              run.processor, prepare, skip)
            if run.checkpoint is not None:
                learner.load_state(runtime.checkpoint_uri(run.checkpoint, "learner"))
                log.info("resuming %s from %s/%s (step %d)", name, config.storage.uri, run.checkpoint.prefix,
                         run.checkpoint.step)
            yield Stage(run, runtime, learner, feed, started)
        except BaseException:
            close_stage(learner, runtime, feed)  # logged; the stage's own error propagates
            raise
        failed = close_stage(learner, runtime, feed)
        if failed is not None:
            raise failed
    write_report(run.paths.run_dir)
    run.metrics.close()


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
    weights: WeightSync | None = None

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

        if self.weights is not None:  # background re-syncs land between steps: export what they changed
            self.weights.observe()
        return {"faults/endpoint_failures": counter_total("videop2r_endpoint_failures_total"),
                "faults/endpoints_out_of_rotation": float(len(self.rollout.stale_endpoints)),
                "faults/reward_fallbacks": float(self.reward_fallbacks),
                "faults/samples_skipped": counter_total("videop2r_samples_skipped_total")}

    def close(self) -> None:
        """Close every client; a failure is logged and the others are still closed."""

        async def close_all() -> None:
            clients = (("rollout", self.rollout), ("reward", self._remote_rewards),
                       ("in-process reward", self._local_rewards))
            for name, client in clients:
                try:
                    await client.aclose()
                except Exception:
                    log.exception("teardown: closing the %s client failed", name)

        try:
            self.runner.run(close_all())
        except Exception:
            log.exception("teardown: closing the stage's clients failed")

    # -- weights (videop2r.train.weight_sync: through rollout.weights_dir, never an s3:// path)

    def weight_sync(self, learner: Any) -> WeightSync:
        if self.weights is None:
            self.weights = WeightSync.for_stage(self.config, self.paths.run_dir, self.rollout, learner.export_weights,
                                                self.runner)
        return self.weights

    def publish_weights(self, learner: Any, version: int) -> SyncReport:
        """Export the learner's weights as `version` into rollout.weights_dir; every endpoint loads them."""
        return self.weight_sync(learner).publish(version)

    def sync_from(self, learner: Any, uri: str, version: int) -> SyncReport:
        """Serve the export at `uri` (a local dir or s3://, e.g. a kept-best model) as `version`:
        copied into rollout.weights_dir first, since the pods load only local paths."""
        sync = self.weight_sync(learner)
        return sync.sync(download_export(uri, version_dir(sync.weights_dir, version), self.config.storage), version)

    def publish_card(self, uri: str) -> None:
        """Finish publishing the stage's model at `uri`: model card, inference settings, config."""
        from videop2r.train.model_card import publish_model_card

        publish_model_card(self.config, self.stage, uri, self.paths.run_dir)

    def publish_model(self, learner: Any, uri: str, version: int, export: str = "") -> None:
        """The learner's weights as an HF checkpoint at `uri`, with their model card. `export`: a
        complete local export of these same weights (the last synced one), copied instead of
        gathering and writing the model again."""
        from videop2r.train.weight_sync import upload_export

        if export:
            upload_export(export, uri, self.config.storage)
        else:
            learner.export_weights(uri, version)
        self.publish_card(uri)

    # -- checkpoints: <checkpoint_prefix>/<run>/<stage>/step-N/{learner,hf,driver.json}

    def checkpoint_uri(self, ckpt: Checkpoint, part: str) -> str:
        return join_uri(self.config.storage.uri, ckpt.prefix, part)

    def save_learner(self, learner: Any, step: int) -> Checkpoint:
        """The learner's training state of `step` under its checkpoint; the HF weights come next, then
        `publish_checkpoint`."""
        ckpt = self.paths.checkpoints.for_step(step)
        learner.save_state(self.checkpoint_uri(ckpt, "learner"))
        return ckpt

    def publish_checkpoint(self, ckpt: Checkpoint, cursor: dict, fields: dict[str, Any], rng_state: Any = None) -> None:
        """Write the driver part of `ckpt` (this stage's metrics rows, the data cursor, the stage's own
        `fields`) and make it the latest: from here on a resume starts after `ckpt.step`."""
        history = [row for row in self.metrics.history if row.get("stage") in (self.stage, f"{self.stage}_eval")]
        state = {"stage": self.stage, "step": ckpt.step, "cursor": cursor, **fields, "metrics_history": history,
                 "model_path": self.config.model.path}
        self.paths.checkpoints.publish(ckpt, state, rng_state)

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
        if self.config.trainer.dump_rollouts:
            from videop2r.train.dumps import append_jsonl

            append_jsonl(self.paths.run_dir / "eval_items.jsonl",
                         [{"tag": tag, "step": step, "final": final, **item} for item in result.items])
        self.metrics.log(f"{self.stage}_eval", step, {**result.as_metrics(), "eval/seconds": result.seconds,
                                        **{f"eval/by_question/{k}": v for k, v in result.by_question.items()}})
        log.info("eval %s step %d: reasoning accuracy %.1f%%, perception sufficiency %.1f%%, format %.1f%% "
                 "(%d samples, %.0fs) %s", tag, step, 100 * result.reasoning_accuracy,
                 100 * result.perception_sufficiency, 100 * result.format_rate, result.n, result.seconds,
                 {k: round(100 * v) for k, v in result.by_question.items()})
        return result
