"""`videop2r sft`: stage 1 (method §3) — supervised fine-tuning on process-aware CoT outputs.

Each step teacher-forces `batch_size × grad_accum` records' reference outputs
(`<observation>…</observation><think>…</think><answer>…</answer>`) with the loss on the assistant
tokens only, on the same FSDP2 learner group PA-GRPO uses (its worker with the loss swapped for
NLL, `videop2r.train.sft_worker`). The held-out set is evaluated before and after (and every
`eval_every` steps) through the rollout endpoints; the fine-tuned model — the last one, or the
best one with `keep_best` — is published as an HF checkpoint at `trainer.sft.output_path`, the
π_ref and starting point of PA-GRPO.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from videop2r.config import VideoP2RConfig
from videop2r.train.batches import NoReferenceOutput, reference_output, sft_batch
from videop2r.train.feed import SkipRule

if TYPE_CHECKING:
    from videop2r.train.stage import Stage

log = logging.getLogger(__name__)

STAGE = "sft"


def sft_output_path(config: VideoP2RConfig) -> str:
    from videop2r.train.run import run_dir_of

    return config.trainer.sft.output_path or str(run_dir_of(config) / "sft-model")


def with_reference_output(processor: Any, sample: Any) -> str:
    """The sample's reference output; `NoReferenceOutput` (a counted skip) when it has none."""
    return reference_output(sample.record)


# SFT sets often mix in records without an output: one warning, every one counted
NO_REFERENCE = SkipRule(NoReferenceOutput, "no_reference_output", warn_once=True)


class SFTSteps:
    """The SFT step loop over a running stage: steps, mid-run evaluations, checkpoints, publishing."""

    def __init__(self, stage: Stage, output_path: str) -> None:
        self.stage, self.rt, self.learner = stage, stage.runtime, stage.learner
        self.config = stage.runtime.config
        self.sft = self.config.trainer.sft
        self.output_path = output_path
        self.best: dict[str, Any] = dict(stage.run.driver_state.get("best", {}))  # keep_best: the best so far

    def step(self, step: int) -> dict[str, float]:
        sft = self.sft
        step_started = time.perf_counter()
        samples = [sample for sample, _ in self.stage.feed.take(sft.batch_size * sft.grad_accum)]
        batch = sft_batch(self.rt.processor, samples)
        update = self.learner.update_policy(batch)
        row = {k: v for k, v in update.items() if k.startswith(("sft/", "actor/"))}
        row["sft/tokens_per_s"] = float(batch.batch["response_mask"].sum()) / max(
            time.perf_counter() - step_started, 1e-9)
        if sft.eval_every and step % sft.eval_every == 0 and step < sft.steps:
            evaluated = self.evaluate_current(step)
            if sft.keep_best:
                self.consider_best(step, evaluated)
        row["time/step"] = time.perf_counter() - step_started
        self.rt.metrics.log(STAGE, step, row)
        if sft.save_every and step % sft.save_every == 0 and step < sft.steps:
            self.save(step)
        return row

    def evaluate_current(self, step: int) -> Any:
        synced = self.rt.publish_weights(self.learner, step)
        return self.rt.evaluate("during_sft", step, model=synced.path)

    def consider_best(self, step: int, evaluated: Any) -> None:
        if evaluated is not None and evaluated.reasoning_accuracy > self.best.get("accuracy", -1.0):
            self.learner.export_weights(self.output_path, step)
            self.best.update(step=step, accuracy=evaluated.reasoning_accuracy, row=evaluated.as_row())

    def save(self, step: int) -> None:
        ckpt = self.rt.save_learner(self.learner, step)
        self.learner.export_weights(self.rt.checkpoint_uri(ckpt, "hf"), step)
        self.rt.publish_checkpoint(ckpt, self.stage.feed.cursor, {"best": self.best})

    def publish(self) -> dict[str, Any]:
        """Publish the model at output_path — the last weights, or with keep_best an earlier step that
        evaluated better — and record its final evaluation; returns that evaluation's row."""
        from videop2r.train.weight_sync import upload_export

        steps = self.sft.steps
        final = self.evaluate_current(steps) if self.sft.keep_best and self.rt.eval_samples else None
        if final is not None and self.best and self.best["accuracy"] > final.reasoning_accuracy:
            best = self.best
            log.info("keeping SFT step %d (held-out accuracy %.1f%%) over the last step (%.1f%%)",
                     best["step"], 100 * best["accuracy"], 100 * final.reasoning_accuracy)
            self.rt.sync_from(self.learner, self.output_path, best["step"])  # its export is already there
            chosen = {**best["row"], "step": best["step"]}
            self._record_final(chosen)
            return chosen
        upload_export(self.rt.publish_weights(self.learner, steps).path, self.output_path, self.config.storage)
        if final is not None:  # the last weights were just evaluated: record that evaluation as final
            self._record_final({**final.as_row(), "step": steps})
            return final.as_row()
        evaluated = self.rt.evaluate(STAGE, steps, final=True, model=self.output_path,
                                     stage_seconds=self.stage.seconds())
        return evaluated.as_row() if evaluated else {}

    def _record_final(self, row: dict[str, Any]) -> None:
        from videop2r.train.report import append_eval

        append_eval(self.rt.paths.run_dir, {"stage": STAGE, "final": True, "model": self.output_path,
                                            "time": time.time(), "stage_seconds": self.stage.seconds(), **row})


def run_sft(config: VideoP2RConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) SFT; returns the final evaluation of the published model."""
    from videop2r.learner.settings import LearnerSettings
    from videop2r.train.sft_worker import SFTWorker
    from videop2r.train.stage import progress_bar, running_stage

    trainer, sft = config.trainer, config.trainer.sft
    with running_stage(config, STAGE, resume, settings=LearnerSettings.for_sft, worker_cls=SFTWorker,
                       data_uri=sft.data_uri or config.data.train_uri, prepare=with_reference_output,
                       skip=NO_REFERENCE) as stage:
        steps = SFTSteps(stage, sft_output_path(config))
        if not stage.resumed and trainer.eval_before:
            stage.runtime.evaluate("initial", 0, final=True, model=config.model.path)
        with progress_bar(config.metrics.progress, total=sft.steps, initial=stage.start_step, desc="SFT",
                          unit="step") as bar:
            for step in range(stage.start_step + 1, sft.steps + 1):
                row = steps.step(step)
                bar.update(1)
                bar.set_postfix(nll=f"{row.get('sft/nll', float('nan')):.3f}", refresh=False)
        result = steps.publish()
        if sft.save_every or resume:
            steps.save(sft.steps)
        stage.runtime.publish_card(steps.output_path)
    return result
