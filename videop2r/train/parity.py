"""Rollout-vs-learner log-prob parity: the per-step gap metric and the gate before step 1.

A rollout engine that silently drops ``video_data``, or generates with stale weights or stale
vision features after a weight update, trains on with no error: its tokens are just drawn from
another policy than the one the learner scores. The same tokens scored by both sides show it.
For the response tokens of a batch (``response_mask``), with ``Δ = log p_learner - log p_rollout``:

- ``rollout/logprob_abs_diff`` = mean |Δ| (0 when both sides are the same policy, up to numerics);
- ``rollout/logprob_kl`` = mean of the k3 estimator ``exp(Δ) - 1 - Δ`` of KL(rollout ‖ learner)
  (the tokens are samples of the rollout policy; method §4's estimator of the KL term).

Both are logged every step (Prometheus ``videop2r_rollout_logprob_abs_diff`` / ``_kl``, alert
``VideoP2RRolloutLearnerMismatch``). Before step 1, ``parity_gate`` generates G samples of the
first ``rollout.parity_prompts`` training prompts (a fixed, unshuffled video batch), scores them
with the learner and refuses to start when mean |Δ| exceeds ``rollout.parity_max_logprob_gap``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

#: |Δ| is clamped before exp() so one absurd token cannot overflow the KL estimate
_MAX_DELTA = 20.0


@dataclass
class GatePrompt:
    """One prompt of the fixed batch (the fields of the loop's `Prompt` that its payload reads)."""

    uid: str
    sample: Any
    inputs: Any


class ParityGateRefused(RuntimeError):
    """The rollout engine and the learner disagree on the log-probs of the same tokens."""


def logprob_gap(rollout_log_probs: torch.Tensor, learner_log_probs: torch.Tensor,
                response_mask: torch.Tensor) -> dict[str, float]:
    """Mean |Δ log p| and the k3 KL over the masked tokens (see the module docstring)."""
    mask = response_mask.bool()
    if not bool(mask.any()):
        return {}
    delta = (learner_log_probs.double() - rollout_log_probs.double())[mask].clamp(-_MAX_DELTA, _MAX_DELTA)
    return {"rollout/logprob_abs_diff": float(delta.abs().mean()),
            "rollout/logprob_kl": float((torch.exp(delta) - 1 - delta).mean())}


def batch_gap(batch: Any) -> dict[str, float]:
    """The gap of a training batch whose `old_log_probs` came from the learner (empty if the batch
    carries no rollout log-probs)."""
    tensors = batch.batch
    if "rollout_log_probs" not in tensors.keys() or "old_log_probs" not in tensors.keys():
        return {}
    return logprob_gap(tensors["rollout_log_probs"], tensors["old_log_probs"], tensors["response_mask"])


def fixed_prompts(config: Any, processor: Any, count: int) -> list[Any]:
    """The first `count` prompts of data.train_uri in pack order (the same batch on every start)."""
    from videop2r.data.stream import ShardStream
    from videop2r.prompting import PromptError
    from videop2r.train.batches import prompt_inputs

    stream = ShardStream(config.data.train_uri, config.data, config.storage, shuffle=False, epochs=1)
    prompts = []
    for sample in stream:
        try:
            inputs = prompt_inputs(processor, sample)
        except PromptError:
            continue
        prompts.append(GatePrompt(f"parity-{len(prompts)}", sample, inputs))
        if len(prompts) >= count:
            break
    close = getattr(stream, "close", None)
    if close is not None:
        close()
    return prompts


def parity_gate(loop: Any, record: Any = None) -> dict[str, float]:
    """Generate on the fixed batch, score it with the learner, hand the gap to `record` (the metrics
    log, so the gauges and the alert see it even on a refusal); raise ``ParityGateRefused`` when the
    mean |Δ log p| is over rollout.parity_max_logprob_gap. Returns the measured gap."""
    from videop2r.learner.batch import RolloutSample, build_batch

    config = loop.config
    count, limit = config.rollout.parity_prompts, config.rollout.parity_max_logprob_gap
    if count <= 0:
        return {}
    prompts = fixed_prompts(config, loop.rt.processor, count)
    if not prompts:
        raise ParityGateRefused(f"parity gate: no usable prompt in {config.data.train_uri}")
    seed = config.trainer.seed
    groups = loop.rt.runner.run(_generate(loop, prompts, seed))
    rows = []
    for prompt, completions in groups:
        for completion in completions:
            if completion.output_ids and completion.output_logprobs:
                rows.append(RolloutSample(prompt.inputs.prompt_ids, completion.output_ids,
                                          prompt.inputs.multi_modal_inputs, completion.output_logprobs,
                                          uid=prompt.uid))
    if not rows:
        raise ParityGateRefused("parity gate: the rollout endpoints returned no tokens with log-probs "
                                "(return_logprob) for the fixed batch")
    batch = build_batch(rows, loop.pad_id)
    batch.batch["old_log_probs"] = loop.learner.compute_log_prob(batch).batch["old_log_probs"]
    gap = batch_gap(batch)
    tokens = int(batch.batch["response_mask"].sum())
    endpoints = sorted({c.endpoint for _, completions in groups for c in completions})
    log.info("parity gate: mean |Δ log p| %.4g, k3 KL %.4g over %d tokens of %d prompts (limit %g; %s)",
             gap["rollout/logprob_abs_diff"], gap["rollout/logprob_kl"], tokens, len(prompts), limit,
             ", ".join(endpoints))
    if record is not None:
        record(gap)
    if gap["rollout/logprob_abs_diff"] > limit:
        raise ParityGateRefused(
            f"parity gate: the rollout engine and the learner disagree on the same tokens: mean |Δ log p| "
            f"{gap['rollout/logprob_abs_diff']:.4f} > rollout.parity_max_logprob_gap={limit} (k3 KL "
            f"{gap['rollout/logprob_kl']:.4f}; {tokens} tokens of {len(prompts)} fixed video prompts from "
            f"{', '.join(endpoints)}). The engine may drop the video, or serve other weights than "
            f"model.path ({config.model.path}); refusing to start")
    return gap


async def _generate(loop: Any, prompts: list[Any], seed: int) -> list[tuple[Any, list[Any]]]:
    import asyncio

    async def one(index: int, prompt: Any) -> tuple[Any, list[Any]]:
        # the training loop's request (loop.payload) with step-0 seeds of its seed scheme
        return prompt, await loop.rt.rollout.generate(loop.payload(prompt, (seed * 1_000_003 + index) % (2**31 - 1)))

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
