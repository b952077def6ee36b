"""`videop2r train`: the PA-GRPO driver (SPEC §4) — the loop of ARCHITECTURE.md and nothing else.

One step:
1. take `prompts_per_step` samples from the shard stream (bad media: skipped and counted there);
2. ask the rollout endpoints for G = rollout.n samples of each prompt, all prompts concurrently;
   as soon as one prompt's rollouts return, its rewards are requested (accuracy + judge, in
   parallel) while the other prompts are still generating;
3. per-process advantages with the estimator `algorithm.adv_estimator` from verl's registry;
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from videop2r.config import VideoP2RConfig
from videop2r.rollout import Completion, RolloutError, sample_payload, sampling_params
from videop2r.train.batches import PromptInputs, prompt_inputs, with_training_fields
from videop2r.train.checkpoint import Checkpoint
from videop2r.train.consistency import think_answer_mismatch
from videop2r.train.group_rewards import ScoredResponse
from videop2r.train.stage import StageRuntime

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


class PromptFeed:
    """Prompts from the training shards, resumable: `cursor` is the stream position after the last one."""

    def __init__(self, config: VideoP2RConfig, processor: Any, uri: str, cursor: dict | None,
                 skip_counter: Any) -> None:
        from videop2r.data.stream import ShardStream

        self.processor = processor
        self.stream = ShardStream(uri, config.data, config.storage, epochs=None, cursor=cursor)
        self.cursor = self.stream.start.to_dict()
        self._samples: Iterator[Any] = iter(self.stream)
        self.skip_counter = skip_counter
        self.skipped: Counter[str] = Counter()

    def take(self, count: int) -> list[tuple[Any, PromptInputs]]:
        from videop2r.prompting import PromptError

        taken = []
        while len(taken) < count:
            sample = next(self._samples)
            self.cursor = sample.cursor.to_dict()
            try:
                inputs = prompt_inputs(self.processor, sample)
            except PromptError as exc:
                log.warning("skipping record %s: cannot build its prompt: %s", sample.record.problem_id, exc)
                self.skipped["bad_prompt"] += 1
                self.skip_counter("bad_prompt")
                continue
            taken.append((sample, inputs))
        return taken

    def close(self) -> None:
        close = getattr(self._samples, "close", None)
        if close is not None:
            close()


class PAGRPOLoop:
    """The step loop over a ready `StageRuntime` and learner (see the module docstring)."""

    def __init__(self, runtime: StageRuntime, learner: Any, feed: PromptFeed) -> None:
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

    # -- 1+2: rollouts, with rewards started per prompt as its rollouts return

    async def _group(self, prompt: Prompt, seed: int) -> Group:
        payload = sample_payload(self.rt.processor, prompt.sample, {**self.sampling, "sampling_seed": seed},
                                 inputs=prompt.inputs.features, rid=prompt.uid)
        try:
            completions = await self.rt.rollout.generate(payload)
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
        from verl.trainer.ppo.core_algos import get_adv_estimator_fn

        from videop2r.algorithms import registered_name, stack_process_masks
        from videop2r.learner.batch import RolloutSample, build_batch
        from videop2r.rewards import token_masks_for_ids

        rows, masks, p_scores, r_scores, kept = [], [], [], [], []
        empty = 0
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
                r_scores.append(scored.reasoning_total)
                kept.append((group, completion, scored))
        if not rows:
            raise StepFailed("no usable rollout in this step (all failed or empty)")
        batch = build_batch(rows, self.pad_id)
        response_mask = batch.batch["response_mask"]
        perception_mask, reasoning_mask = stack_process_masks(masks, response_mask.shape[1])
        adv_metrics: dict[str, float] = {}
        estimator = get_adv_estimator_fn(registered_name(self.config.algorithm.adv_estimator))
        advantages, _ = estimator(
            token_level_rewards=torch.zeros(response_mask.shape),
            response_mask=response_mask,
            index=batch.non_tensor_batch["uid"],
            epsilon=self.config.algorithm.norm_eps,
            norm_adv_by_std_in_grpo=self.config.algorithm.norm_adv_by_std_in_grpo,
            config=self.config.algorithm,
            perception_mask=perception_mask,
            reasoning_mask=reasoning_mask,
            perception_scores=torch.tensor(p_scores, dtype=torch.float64),
            reasoning_scores=torch.tensor(r_scores, dtype=torch.float64),
            metrics=adv_metrics,
        )
        with_training_fields(batch, advantages)
        stats = self._reward_stats(kept, perception_mask, reasoning_mask, adv_metrics)
        stats["rollout/empty_responses"] = float(empty)
        return batch, stats

    def _reward_stats(self, kept: list, perception_mask: torch.Tensor, reasoning_mask: torch.Tensor,
                      adv_metrics: dict[str, float]) -> dict[str, float]:
        stats: dict[str, float] = {}
        for process in ("perception", "reasoning"):
            parts = [getattr(scored, process) for _, _, scored in kept]
            stats[f"reward/{process}/accuracy"] = _mean([float(p.get("accuracy", 0.0)) for p in parts])
            stats[f"reward/{process}/format"] = _mean([float(p.get("format", 0)) for p in parts])
            stats[f"reward/{process}/length"] = _mean([float(p.get("length_reward", 0.0)) for p in parts])
            stats[f"reward/{process}/total"] = _mean([float(p.get("total", 0.0)) for p in parts])
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
        times: dict[str, float] = {}
        started = time.perf_counter()
        if self.config.trainer.old_log_prob_source == "rollout" and "rollout_log_probs" in batch.batch.keys():
            batch.batch["old_log_probs"] = batch.batch["rollout_log_probs"].clone()
        else:
            out = self.learner.compute_log_prob(batch)
            batch.batch["old_log_probs"] = out.batch["old_log_probs"]
        times["time/old_log_prob"] = time.perf_counter() - started
        if self.config.algorithm.kl_coef > 0:
            started = time.perf_counter()
            batch.batch["ref_log_prob"] = self.learner.compute_ref_log_prob(batch).batch["ref_log_prob"]
            times["time/ref_log_prob"] = time.perf_counter() - started
        started = time.perf_counter()
        metrics = self.learner.update_policy(batch)
        times["time/update"] = time.perf_counter() - started
        return metrics, times

    # -- 5: weights

    def publish_weights(self, step: int, uri: str | None = None) -> float:
        """Export the learner's weights (to `uri`, default the run's rollout-weights) and sync them."""
        started = time.perf_counter()
        uri = uri or self.rt.paths.weights_uri
        self.learner.export_weights(uri, step)
        self.rt.sync_weights(uri, step)
        self.weight_version = step
        return time.perf_counter() - started

    def save_checkpoint(self, step: int) -> tuple[Checkpoint, float]:
        """Learner state and HF weights of `step` under its checkpoint prefix (the driver part and
        "latest" are published by `publish_checkpoint` once the step's metrics are in)."""
        from videop2r.train.run import join_uri

        started = time.perf_counter()
        ckpt = self.rt.paths.checkpoints.for_step(step)
        base = self.config.storage.uri
        self.learner.save_state(join_uri(base, ckpt.prefix, "learner"))
        self.publish_weights(step, join_uri(base, ckpt.prefix, "hf"))
        return ckpt, time.perf_counter() - started

    def publish_checkpoint(self, ckpt: Checkpoint, step: int) -> None:
        state = {
            "stage": STAGE,
            "step": step,
            "cursor": self.feed.cursor,
            "weight_version": self.weight_version,
            "metrics_history": [row for row in self.rt.metrics.history
                                if row.get("stage") in (STAGE, f"{STAGE}_eval")],
            "model_path": self.config.model.path,
            "seed": self.config.trainer.seed,
        }
        self.rt.paths.checkpoints.publish(ckpt, state, {"python": random.getstate(), "numpy": np.random.get_state()})

    # -- the step

    def step(self, step: int) -> dict[str, float]:
        trainer = self.config.trainer
        step_started = time.perf_counter()
        groups, rollout_seconds = self.rollouts(step)
        generated = sum(len(c.output_ids) for g in groups for c in g.completions)
        batch, stats = self.training_batch(groups)
        metrics, times = self.update(batch)
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
            **{k: v for k, v in metrics.items() if k.startswith("actor/")},
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
            self.publish_checkpoint(ckpt, step)
        return row


def _restore_driver_rng(rng_state: Any) -> None:
    if isinstance(rng_state, dict):
        if "python" in rng_state:
            random.setstate(rng_state["python"])
        if "numpy" in rng_state:
            np.random.set_state(rng_state["numpy"])


def run_pa_grpo(config: VideoP2RConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) the PA-GRPO stage of `config`; returns the final evaluation."""
    from videop2r.learner.group import Learner
    from videop2r.train.cluster import ray_session
    from videop2r.train.report import has_final_eval, write_report
    from videop2r.train.run import join_uri
    from videop2r.train.services_local import services_for
    from videop2r.train.stage import (StageRuntime, close_stage, load_eval_samples, open_run, progress_bar,
                                      sigterm_as_interrupt)

    trainer = config.trainer
    run = open_run(config, STAGE, resume)
    paths, ckpt, driver_state, metrics, processor = run.paths, run.checkpoint, run.driver_state, run.metrics, run.processor
    started = time.time()
    result: dict[str, Any] = {}
    with sigterm_as_interrupt(), ray_session(trainer.ray_address, num_cpus=max(trainer.num_workers, 2)), \
            services_for(config, config.model.path, paths.run_dir / "services", paths.config_file) as endpoints, \
            asyncio.Runner() as runner:
        learner = Learner.from_config(config)
        runtime = feed = None
        try:
            endpoints.wait_ready()
            runtime = StageRuntime(config, STAGE, paths, endpoints, processor, metrics, runner)
            runtime.eval_samples = load_eval_samples(config)
            feed = PromptFeed(config, processor, config.data.train_uri, driver_state.get("cursor"), metrics.count_skip)
            loop = PAGRPOLoop(runtime, learner, feed)
            start = 0
            if ckpt is not None:
                learner.load_state(join_uri(config.storage.uri, ckpt.prefix, "learner"))
                runtime.sync_weights(join_uri(config.storage.uri, ckpt.prefix, "hf"), ckpt.step)
                loop.weight_version = start = ckpt.step
                _restore_driver_rng(run.rng_state)
                log.info("resumed from %s/%s (step %d)", config.storage.uri, ckpt.prefix, ckpt.step)
            elif trainer.eval_before and not has_final_eval(paths.run_dir, config.model.path):
                runtime.evaluate(f"before_{STAGE}", 0, final=True, model=config.model.path)
            bar = progress_bar(config.metrics.progress, total=trainer.total_steps, initial=start, desc="PA-GRPO",
                               unit="step")
            with bar:
                for step in range(start + 1, trainer.total_steps + 1):
                    row = loop.step(step)
                    bar.update(1)
                    bar.set_postfix(R_P=f"{row['reward/perception/total']:.2f}",
                                    R_R=f"{row['reward/reasoning/total']:.2f}",
                                    acc=f"{row['reward/reasoning/accuracy']:.2f}", refresh=False)
            final = runtime.evaluate(STAGE, trainer.total_steps, final=True, model=config.model.path,
                                     stage_seconds=time.time() - started)
            result = final.as_row() if final else {}
            output_path = trainer.output_path or str(paths.run_dir / "pa_grpo-model")
            learner.export_weights(output_path, trainer.total_steps)
            log.info("final policy (%s) published at %s", config.algorithm.adv_estimator, output_path)
        finally:
            close_stage(learner, runtime, feed)
    write_report(paths.run_dir)
    metrics.close()
    return result
