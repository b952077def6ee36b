"""`videop2r sft`: stage 1 (SPEC §3) — supervised fine-tuning on process-aware CoT outputs.

Each step teacher-forces `batch_size × grad_accum` records' reference outputs
(`<observation>…</observation><think>…</think><answer>…</answer>`) with the loss on the assistant
tokens only, on the same FSDP2 learner group PA-GRPO uses (its worker with the loss swapped for
NLL, `videop2r.train.sft_worker`). The held-out set is evaluated before and after (and every
`eval_every` steps) through the rollout endpoints; the fine-tuned model — the last one, or the
best one with `keep_best` — is published as an HF checkpoint at `trainer.sft.output_path`, the
π_ref and starting point of PA-GRPO.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from videop2r.config import VideoP2RConfig
from videop2r.train.batches import NoReferenceOutput, reference_output, sft_batch

log = logging.getLogger(__name__)

STAGE = "sft"


def sft_output_path(config: VideoP2RConfig) -> str:
    from videop2r.train.run import run_dir_of

    return config.trainer.sft.output_path or str(run_dir_of(config) / "sft-model")


def sft_learner_settings(config: VideoP2RConfig) -> Any:
    """The learner's settings with the SFT optimiser: one optimizer step per batch × grad_accum rows."""
    from videop2r.learner.settings import LearnerSettings

    sft, workers = config.trainer.sft, config.trainer.num_workers
    return LearnerSettings.from_config(config).model_copy(update={
        "reference_path": "",  # no KL in SFT
        "algorithm": config.algorithm.model_copy(update={"kl_coef": 0.0}),
        "lr": sft.lr,
        "lr_schedule": sft.lr_schedule,
        "warmup_steps": sft.warmup_steps,
        "total_steps": max(1, sft.steps),
        "weight_decay": sft.weight_decay,
        "mini_batch_size": sft.batch_size * sft.grad_accum,
        "micro_batch_size": max(1, math.ceil(sft.batch_size / workers)),
        "ppo_epochs": 1,
        "temperature": 1.0,  # plain log-softmax: NLL of the reference tokens
    })


class ReferenceFeed:
    """Training samples that carry a reference output; others are skipped and counted."""

    def __init__(self, config: VideoP2RConfig, uri: str, cursor: dict | None, skip_counter: Any) -> None:
        from videop2r.data.stream import ShardStream

        self.stream = ShardStream(uri, config.data, config.storage, epochs=None, cursor=cursor)
        self.cursor = self.stream.start.to_dict()
        self._samples: Iterator[Any] = iter(self.stream)
        self.skip_counter = skip_counter
        self.skipped: Counter[str] = Counter()

    def take(self, count: int) -> list[Any]:
        taken = []
        while len(taken) < count:
            sample = next(self._samples)
            self.cursor = sample.cursor.to_dict()
            try:
                reference_output(sample.record)
            except NoReferenceOutput as exc:
                if not self.skipped["no_reference_output"]:
                    log.warning("skipping: %s", exc)
                self.skipped["no_reference_output"] += 1
                self.skip_counter("no_reference_output")
                continue
            taken.append(sample)
        return taken

    def close(self) -> None:
        close = getattr(self._samples, "close", None)
        if close is not None:
            close()


def run_sft(config: VideoP2RConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) SFT; returns the final evaluation of the published model."""
    from videop2r.learner.group import Learner
    from videop2r.train.cluster import ray_session
    from videop2r.train.report import append_eval, write_report
    from videop2r.train.run import join_uri
    from videop2r.train.services_local import services_for
    from videop2r.train.sft_worker import SFTWorker
    from videop2r.train.stage import (StageRuntime, close_stage, load_eval_samples, open_run, progress_bar,
                                      sigterm_as_interrupt)

    trainer, sft = config.trainer, config.trainer.sft
    output_path = sft_output_path(config)
    run = open_run(config, STAGE, resume)
    paths, ckpt, state, metrics, processor = run.paths, run.checkpoint, run.driver_state, run.metrics, run.processor
    global_batch = sft.batch_size * sft.grad_accum
    started = time.time()
    best: dict[str, Any] = dict(state.get("best", {}))
    result: dict[str, Any] = {}

    with sigterm_as_interrupt(), ray_session(trainer.ray_address, num_cpus=max(trainer.num_workers, 2)), \
            services_for(config, config.model.path, paths.run_dir / "services", paths.config_file) as endpoints, \
            asyncio.Runner() as runner:
        learner = Learner(sft_learner_settings(config), trainer.num_workers, worker_cls=SFTWorker,
                          failure_grace_s=trainer.worker_failure_grace_s)
        runtime = feed = None
        try:
            endpoints.wait_ready()
            runtime = StageRuntime(config, STAGE, paths, endpoints, processor, metrics, runner)
            runtime.eval_samples = load_eval_samples(config)
            feed = ReferenceFeed(config, sft.data_uri or config.data.train_uri, state.get("cursor"),
                                 metrics.count_skip)
            start = 0
            if ckpt is not None:
                learner.load_state(join_uri(config.storage.uri, ckpt.prefix, "learner"))
                start = ckpt.step
                log.info("resumed SFT from %s/%s (step %d)", config.storage.uri, ckpt.prefix, ckpt.step)
            elif trainer.eval_before:
                runtime.evaluate("initial", 0, final=True, model=config.model.path)

            def evaluate_current(step: int) -> Any:
                learner.export_weights(paths.weights_uri, step)
                runtime.sync_weights(paths.weights_uri, step)
                return runtime.evaluate("during_sft", step, model=f"{paths.weights_uri}@{step}")

            def consider_best(step: int, evaluated: Any) -> None:
                if evaluated is not None and evaluated.reasoning_accuracy > best.get("accuracy", -1.0):
                    learner.export_weights(output_path, step)
                    best.update(step=step, accuracy=evaluated.reasoning_accuracy, row=evaluated.as_row())

            bar = progress_bar(config.metrics.progress, total=sft.steps, initial=start, desc="SFT", unit="step")
            with bar:
                for step in range(start + 1, sft.steps + 1):
                    step_started = time.perf_counter()
                    samples = feed.take(global_batch)
                    batch = sft_batch(processor, samples)
                    update = learner.update_policy(batch)
                    row = {k: v for k, v in update.items() if k.startswith(("sft/", "actor/"))}
                    row["sft/tokens_per_s"] = float(batch.batch["response_mask"].sum()) / max(
                        time.perf_counter() - step_started, 1e-9)
                    if sft.eval_every and step % sft.eval_every == 0 and step < sft.steps:
                        evaluated = evaluate_current(step)
                        if sft.keep_best:
                            consider_best(step, evaluated)
                    row["time/step"] = time.perf_counter() - step_started
                    metrics.log(STAGE, step, row)
                    bar.update(1)
                    bar.set_postfix(nll=f"{update.get('sft/nll', float('nan')):.3f}", refresh=False)
                    if sft.save_every and step % sft.save_every == 0 and step < sft.steps:
                        _save(learner, paths, config, step, feed, metrics, best)

            # publish: the final weights, unless an earlier evaluation was better (keep_best)
            final = evaluate_current(sft.steps) if sft.keep_best and runtime.eval_samples else None
            if final is not None and best and best["accuracy"] > final.reasoning_accuracy:
                log.info("keeping SFT step %d (held-out accuracy %.1f%%) over the last step (%.1f%%)",
                         best["step"], 100 * best["accuracy"], 100 * final.reasoning_accuracy)
                runtime.sync_weights(output_path, best["step"])
                chosen = {**best["row"], "step": best["step"]}
                append_eval(paths.run_dir, {"stage": STAGE, "final": True, "model": output_path, "time": time.time(),
                                            "stage_seconds": time.time() - started, **chosen})
                result = chosen
            else:
                learner.export_weights(output_path, sft.steps)
                runtime.sync_weights(output_path, sft.steps)
                if final is not None:
                    append_eval(paths.run_dir, {"stage": STAGE, "final": True, "model": output_path,
                                                "time": time.time(), "stage_seconds": time.time() - started,
                                                **final.as_row(), "step": sft.steps})
                    result = final.as_row()
                else:
                    evaluated = runtime.evaluate(STAGE, sft.steps, final=True, model=output_path,
                                                 stage_seconds=time.time() - started)
                    result = evaluated.as_row() if evaluated else {}
            if sft.save_every or resume:
                _save(learner, paths, config, sft.steps, feed, metrics, best)
            log.info("SFT model published at %s", output_path)
        finally:
            close_stage(learner, runtime, feed)
    write_report(paths.run_dir)
    metrics.close()
    return result


def _save(learner: Any, paths: Any, config: VideoP2RConfig, step: int, feed: ReferenceFeed, metrics: Any,
          best: dict[str, Any]) -> None:
    from videop2r.train.run import join_uri

    ckpt = paths.checkpoints.for_step(step)
    learner.save_state(join_uri(config.storage.uri, ckpt.prefix, "learner"))
    learner.export_weights(join_uri(config.storage.uri, ckpt.prefix, "hf"), step)
    history = [row for row in metrics.history if row.get("stage") in (STAGE, f"{STAGE}_eval")]
    paths.checkpoints.publish(ckpt, {"stage": STAGE, "step": step, "cursor": feed.cursor, "best": best,
                                     "metrics_history": history, "model_path": config.model.path}, None)
