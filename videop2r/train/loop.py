"""`videop2r train`: the PA-GRPO driver (method §4) — the loop of docs/architecture.md and nothing else.

One step:
1. take `prompts_per_step` samples from the shard stream (bad media: skipped and counted there);
2. ask the rollout endpoints for G = rollout.n samples of each prompt, all prompts concurrently;
   as soon as one prompt's rollouts return, its rewards are requested (accuracy + judge, in
   parallel) while the other prompts are still generating;
3. per-process advantages with the estimator `algorithm.adv_estimator` (videop2r.algorithms);
4. old (and reference) log-probs and one policy update on the learner group;
5. weight sync to the rollout endpoints every `sync_every` steps (and at every eval/checkpoint),
   held-out evaluation every `eval_every`, a checkpoint every `save_every`.

A checkpoint is also a weight-sync point, so a resumed run generates from exactly the weights
the uninterrupted run had. Rollout sampling seeds derive from (seed, step, prompt), the data
order from the stream cursor, the learner's RNG from its saved state: a run killed and resumed
ends where an uninterrupted run ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from videop2r.config import VideoP2RConfig
from videop2r.prompting import PromptError
from videop2r.rewards.consistency import think_answer_mismatch
from videop2r.rollout import Completion, RolloutError, sample_payload, sampling_params
from videop2r.train.batches import PromptInputs, prompt_inputs, with_training_fields
from videop2r.train.checkpoint import Checkpoint, restore_driver_rng
from videop2r.train.dumps import dump_rollouts
from videop2r.train.feed import SampleFeed, SkipRule
from videop2r.train.group_rewards import ScoredResponse
from videop2r.train.parity import batch_gap, parity_gate
from videop2r.train.stage import StageRuntime
from videop2r.train.update import BatchSkipped, impute_judge_errors

log = logging.getLogger(__name__)

STAGE = "pa_grpo"


class StepFailed(RuntimeError):
    """Too many rollouts of a step failed (every rollout endpoint down): the run cannot go on."""


@dataclass
class Prompt:
    uid: str
    sample: Any
    inputs: PromptInputs


@dataclass
class Group:
    """One prompt's G rollouts and their rewards (completions empty when the rollout failed)."""

    prompt: Prompt
    completions: list[Completion]
    scored: list[ScoredResponse]
    error: str = ""


def rollout_seed(seed: int, step: int, index: int) -> int:
    """Sampling seed of prompt `index` at `step`: a pure function, so a resumed run draws the same."""
    return (seed * 1_000_003 + step * 10_007 + index) % (2**31 - 1)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


# a record whose prompt cannot be built is skipped, logged and counted
BAD_PROMPT = SkipRule(PromptError, "bad_prompt")


class PAGRPOLoop:
    """The step loop over a ready `StageRuntime` and learner (see the module docstring)."""

    def __init__(self, runtime: StageRuntime, learner: Any, feed: SampleFeed[PromptInputs]) -> None:
        from videop2r.rewards import load_tokenizer

        self.rt = runtime
        self.config = runtime.config
        self.learner = learner
        self.feed = feed
        self.segment_tokenizer = load_tokenizer(runtime.processor.tokenizer)
        self.pad_id = int(runtime.processor.tokenizer.pad_token_id)
        self.sampling = sampling_params(self.config.rollout, blocked_token_ids=runtime.blocked_token_ids
                                        if self.config.rollout.block_vision_tokens else ())
        self.weight_version = 0
        self.last_export = ""

    # -- 1+2: rollouts, with rewards started per prompt as its rollouts return

    def payload(self, prompt: Prompt, seed: int) -> dict[str, Any]:
        """The /generate body of one prompt's G samples (also the parity gate's)."""
        # text + the exact frames as a lossless data: URI, one seed per sample (SGLang 0.5.23 format)
        return sample_payload(self.rt.processor, prompt.sample, self.sampling, rid=prompt.uid, seed=seed)

    async def _group(self, prompt: Prompt, seed: int) -> Group:
        try:
            completions = await self.rt.rollout.generate(await asyncio.to_thread(self.payload, prompt, seed))
        except RolloutError as exc:
            log.warning("rollout of prompt %s (%s) failed: %s", prompt.uid, prompt.sample.record.problem_id, exc)
            return Group(prompt, [], [], str(exc))
        scored = await self.rt.scorer.score_group(prompt.sample.record, prompt.uid, [c.text for c in completions])
        return Group(prompt, completions, scored)

    async def _collect(self, prompts: list[Prompt], step: int) -> list[Group]:
        seed = self.config.trainer.seed
        tasks = [asyncio.create_task(self._group(p, rollout_seed(seed, step, i))) for i, p in enumerate(prompts)]
        return list(await asyncio.gather(*tasks))

    def rollouts(self, step: int) -> tuple[list[Group], float]:
        prompts = [Prompt(f"{step}-{i}", sample, inputs)
                   for i, (sample, inputs) in enumerate(self.feed.take(self.config.trainer.prompts_per_step))]
        started = time.perf_counter()
        groups = self.rt.runner.run(self._collect(prompts, step))
        failed = [g for g in groups if g.error]
        limit = self.config.trainer.max_failed_fraction
        if failed and len(failed) / len(groups) > limit:
            # the client cools dead endpoints down and re-syncs stale ones: give it one more chance
            log.warning("step %d: %d/%d prompts failed to roll out; retrying them once", step, len(failed), len(groups))
            time.sleep(2.0)
            retried = self.rt.runner.run(self._collect([g.prompt for g in failed], step))
            by_uid = {g.prompt.uid: g for g in retried}
            groups = [by_uid.get(g.prompt.uid, g) for g in groups]
            failed = [g for g in groups if g.error]
            if len(failed) / len(groups) > limit:
                raise StepFailed(f"step {step}: {len(failed)}/{len(groups)} prompts could not be rolled out "
                                 f"(trainer.max_failed_fraction={limit}); last error: {failed[0].error}")
        return groups, time.perf_counter() - started

    # -- 3: the training batch and its advantages

    def training_batch(self, groups: list[Group]) -> tuple[Any, dict[str, float]]:
        from videop2r.algorithms import compute_process_advantages, stack_process_masks
        from videop2r.learner.batch import RolloutSample, build_batch
        from videop2r.rewards import token_masks_for_ids

        rows, masks, p_scores, r_scores, kept, judge_failed, empty = [], [], [], [], [], [], 0
        for group in groups:
            for completion, scored in zip(group.completions, group.scored):
                if not completion.output_ids:
                    empty += 1  # nothing to train on (the learner refuses empty responses)
                    continue
                version = int(completion.weight_version) if (completion.weight_version or "").isdigit() else -1
                rows.append(RolloutSample(group.prompt.inputs.prompt_ids, completion.output_ids,
                                          group.prompt.inputs.multi_modal_inputs,
                                          completion.output_logprobs or None, uid=group.prompt.uid,
                                          weight_version=version))
                _, _, token_mask = token_masks_for_ids(completion.output_ids, self.segment_tokenizer)
                masks.append((token_mask.perception, token_mask.reasoning))
                p_scores.append(scored.perception_total)
                judge_failed.append(bool(scored.verdict and scored.verdict.error))
                r_scores.append(scored.reasoning_total)
                kept.append((group, completion, scored))
        if not rows:
            raise StepFailed("no usable rollout in this step (all failed or empty)")
        batch = build_batch(rows, self.pad_id)
        p_scores = impute_judge_errors(p_scores, [row.uid for row in rows], judge_failed)  # not a "No"
        response_mask = batch.batch["response_mask"]
        perception_mask, reasoning_mask = stack_process_masks(masks, response_mask.shape[1])
        algorithm = self.config.algorithm
        computed = compute_process_advantages(
            algorithm.adv_estimator, torch.tensor(p_scores, dtype=torch.float64),
            torch.tensor(r_scores, dtype=torch.float64), response_mask, batch.non_tensor_batch["uid"],
            perception_mask=perception_mask, reasoning_mask=reasoning_mask,
            eps=algorithm.norm_eps, scale_by_std=algorithm.norm_adv_by_std_in_grpo)
        advantages, adv_metrics = computed.advantages, computed.metrics
        with_training_fields(batch, advantages)
        batch.batch["perception_mask"], batch.batch["reasoning_mask"] = perception_mask, reasoning_mask
        if self.config.trainer.dump_rollouts:  # per-rollout rewards and advantages (videop2r.train.dumps)
            dump_rollouts(self.rt.paths.run_dir, kept, advantages, perception_mask, reasoning_mask)
        stats = self._reward_stats(kept, perception_mask, reasoning_mask, adv_metrics)
        stats["rollout/empty_responses"] = float(empty)
        stats["rollout/judge_errors"] = float(sum(judge_failed))
        return batch, stats

    def _reward_stats(self, kept: list, perception_mask: torch.Tensor, reasoning_mask: torch.Tensor,
                      adv_metrics: dict[str, float]) -> dict[str, float]:
        stats: dict[str, float] = {}
        for process in ("perception", "reasoning"):
            parts = [getattr(scored, process) for _, _, scored in kept]
            stats[f"reward/{process}/accuracy"] = _mean([float(p.accuracy or 0.0) for p in parts])
            stats[f"reward/{process}/format"] = _mean([float(p.format) for p in parts])
            stats[f"reward/{process}/length"] = _mean([float(p.length_reward or 0.0) for p in parts])
            stats[f"reward/{process}/total"] = _mean([float(p.total or 0.0) for p in parts])
        stats["length/perception"] = float(perception_mask.sum(-1).mean())
        stats["length/reasoning"] = float(reasoning_mask.sum(-1).mean())
        for key, value in adv_metrics.items():  # advantage/<stat>/<process> → advantage/<process>/<stat>
            parts = key.split("/")
            if parts[1] == "collapse_fraction":
                stats[f"collapse/{parts[2]}"] = value
            else:
                stats[f"advantage/{parts[2]}/{parts[1]}"] = value
        decided = [think_answer_mismatch(scored.text, group.prompt.sample.record.problem_type)
                   for group, _, scored in kept]
        decided = [d for d in decided if d is not None]
        stats["rollout/mismatch_rate"] = _mean([float(d) for d in decided])
        stats["rollout/judge_refused"] = _mean([float(bool(s.verdict and s.verdict.refused)) for _, _, s in kept])
        stats["rollout/response_tokens"] = _mean([float(len(c.output_ids)) for _, c, _ in kept])
        return stats

    # -- 4: learner

    def update(self, batch: Any) -> tuple[dict[str, float], dict[str, float]]:
        from videop2r.train.update import learner_update  # rows it can take, old/ref log-probs, update

        return learner_update(self.learner, batch, self.config, self.rt.metrics.count_skip)

    # -- 5: weights

    def publish_weights(self, step: int) -> float:
        """Export the learner's weights into rollout.weights_dir/v<step> and sync every endpoint."""
        started = time.perf_counter()
        self.last_export = self.rt.publish_weights(self.learner, step).path
        self.weight_version = step
        return time.perf_counter() - started

    def save_checkpoint(self, step: int) -> tuple[Checkpoint, float]:
        """Learner state and HF weights of `step` under its checkpoint prefix (the driver part and
        "latest" are published by `publish_checkpoint` once the step's metrics are in)."""
        from videop2r.train.weight_sync import upload_export

        started = time.perf_counter()
        ckpt = self.rt.save_learner(self.learner, step)
        self.publish_weights(step)  # the synced export is the checkpoint's HF copy
        upload_export(self.last_export, self.rt.checkpoint_uri(ckpt, "hf"), self.config.storage)
        return ckpt, time.perf_counter() - started

    def publish_checkpoint(self, ckpt: Checkpoint) -> None:
        self.rt.publish_checkpoint(ckpt, self.feed.cursor,
                                   {"weight_version": self.weight_version, "seed": self.config.trainer.seed},
                                   {"python": random.getstate(), "numpy": np.random.get_state()})

    # -- the step

    def step(self, step: int) -> dict[str, float]:
        trainer = self.config.trainer
        step_started = time.perf_counter()
        groups, rollout_seconds = self.rollouts(step)
        generated = sum(len(c.output_ids) for g in groups for c in g.completions)
        batch, stats = self.training_batch(groups)
        try:
            metrics, times = self.update(batch)
        except BatchSkipped as exc:  # counted; the run goes on with the next prompts
            log.warning("step %d: the learner batch was skipped: %s", step, exc)
            metrics, times = {"learner/skipped_batches": 1.0}, {}
        stats.update(batch_gap(batch))  # rollout-vs-learner log-prob gap (learner old_log_probs only)
        times["time/rollout_and_reward"] = rollout_seconds
        is_last = step == trainer.total_steps  # synced here; the final evaluation follows the loop
        is_eval = bool(trainer.eval_every) and step % trainer.eval_every == 0 and not is_last
        is_save = bool(trainer.save_every) and (step % trainer.save_every == 0 or is_last)
        ckpt = None
        if is_save:
            ckpt, times["time/checkpoint"] = self.save_checkpoint(step)
        elif step % trainer.sync_every == 0 or is_eval or is_last:
            times["time/weight_sync"] = self.publish_weights(step)
        row = {
            **stats,
            **{k: v for k, v in metrics.items() if k.startswith(("actor/", "learner/"))},
            "actor/policy_loss": metrics.get("actor/pg_loss", 0.0),
            "rollout/tokens_per_s": generated / rollout_seconds if rollout_seconds > 0 else 0.0,
            "rollout/failed_prompts": float(sum(1 for g in groups if g.error)),
            "data/skipped": float(sum(self.feed.stream.skipped.values()) + sum(self.feed.skipped.values())),
            **self.rt.fault_counts(),
            **times,
        }
        if is_eval:
            started = time.perf_counter()
            self.rt.evaluate("during_pa_grpo", step, model=self.config.model.path)
            row["time/eval"] = time.perf_counter() - started
        row["time/step"] = time.perf_counter() - step_started
        self.rt.metrics.log(STAGE, step, row)
        if ckpt is not None:
            self.publish_checkpoint(ckpt)
        return row


def run_pa_grpo(config: VideoP2RConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) the PA-GRPO stage of `config`; returns the final evaluation."""
    from videop2r.learner.settings import LearnerSettings
    from videop2r.learner.worker import LearnerWorker
    from videop2r.train.report import has_final_eval
    from videop2r.train.stage import progress_bar, running_stage

    trainer = config.trainer
    with running_stage(config, STAGE, resume, settings=LearnerSettings.from_config, worker_cls=LearnerWorker,
                       data_uri=config.data.train_uri, prepare=prompt_inputs, skip=BAD_PROMPT) as stage:
        runtime, start = stage.runtime, stage.start_step
        loop = PAGRPOLoop(runtime, stage.learner, stage.feed)
        if stage.resumed:  # the weights and driver RNG of the checkpoint, as the uninterrupted run had them
            loop.publish_weights(start)
            restore_driver_rng(stage.run.rng_state)
        elif trainer.eval_before and not has_final_eval(runtime.paths.run_dir, config.model.path):
            runtime.evaluate(f"before_{STAGE}", 0, final=True, model=config.model.path)
        # refuses to start when the rollout engine and the learner disagree on the same tokens
        parity_gate(loop, record=lambda gap: runtime.metrics.log(f"{STAGE}_parity", start, gap))
        with progress_bar(config.metrics.progress, total=trainer.total_steps, initial=start, desc="PA-GRPO",
                          unit="step") as bar:
            for step in range(start + 1, trainer.total_steps + 1):
                row = loop.step(step)
                bar.update(1)
                bar.set_postfix(R_P=f"{row['reward/perception/total']:.2f}",
                                R_R=f"{row['reward/reasoning/total']:.2f}",
                                acc=f"{row['reward/reasoning/accuracy']:.2f}", refresh=False)
        final = runtime.evaluate(STAGE, trainer.total_steps, final=True, model=config.model.path,
                                 stage_seconds=stage.seconds())
        result = final.as_row() if final else {}
        synced = loop.last_export if loop.weight_version == trainer.total_steps else ""  # "" when resumed at the end
        runtime.publish_model(stage.learner, trainer.output_path or str(runtime.paths.run_dir / "pa_grpo-model"),
                              trainer.total_steps, export=synced)
    return result
