"""The learner half of a PA-GRPO step on the driver: rows the learner can take, log-probs, the update.

- Rows the learner cannot forward (a placeholder count that does not match the grid, a sampled
  vision token), prompts over `learner.max_prompt_tokens`, and rows longer than the micro-batch
  token budget are dropped from the batch, logged and counted (`videop2r_samples_skipped_total`).
  A batch with no row left — or one the learner refuses — is skipped and counted, never the end
  of the run (the prompt cursor has moved on, so a resume does not replay it).
- Old log-probs: with one optimizer step per batch (`learner.old_log_prob_pass: auto`) the pass
  is skipped — the learner uses the current log-probs, detached (ratio 1, the same gradient).
- Judge errors (timeouts, HTTP failures) are not a "No": the rollout's perception reward is set
  to the mean of its group's judged rollouts before normalisation, so its perception advantage is
  exactly 0 and the group's mean is unchanged; counted as `rollout/judge_errors`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from videop2r.config import VideoP2RConfig

log = logging.getLogger(__name__)


class BatchSkipped(RuntimeError):
    """No row of the step's batch can be trained on; the step is skipped (and counted)."""


def impute_judge_errors(scores: Sequence[float], uids: Sequence[str], failed: Sequence[bool]) -> list[float]:
    """Perception scores with each failed rollout's score replaced by its group's judged mean (0 if none)."""
    judged: dict[str, list[float]] = {}
    for score, uid, bad in zip(scores, uids, failed, strict=True):
        if not bad:
            judged.setdefault(uid, []).append(float(score))
    return [float(score) if not bad else (sum(judged[uid]) / len(judged[uid]) if judged.get(uid) else 0.0)
            for score, uid, bad in zip(scores, uids, failed, strict=True)]


def rows_to_drop(batch: Any, vision: Any, config: VideoP2RConfig) -> dict[int, str]:
    """Rows the learner cannot take → reason key (for the skip counter); logged once per row."""
    from videop2r.learner.batch import invalid_rows
    from videop2r.learner.micro import micro_cost, row_shapes
    from videop2r.learner.rows import Rows

    learner = config.learner
    drop = {row: "learner_invalid_row" for row in invalid_rows(batch, vision)}
    for row, (prompt, response) in enumerate(row_shapes(Rows.of(batch))):
        if row in drop:
            continue
        if learner.max_prompt_tokens and prompt > learner.max_prompt_tokens:
            drop[row] = "prompt_over_max_prompt_tokens"
        elif learner.max_tokens_per_micro_batch and micro_cost([(prompt, response)]) > \
                learner.max_tokens_per_micro_batch:
            drop[row] = "row_over_token_budget"
    for row, reason in sorted(drop.items()):
        log.warning("dropping rollout %d (%s) from the learner batch: %s", row,
                    batch.non_tensor_batch["uid"][row], reason)
    return drop


def learner_update(learner: Any, batch: Any, config: VideoP2RConfig,
                   count_skip: Callable[[str, int], None]) -> tuple[dict[str, float], dict[str, float]]:
    """Old/ref log-probs and one update on the rows the learner takes; (metrics, times).

    Raises `BatchSkipped` (already counted) when nothing in the batch can be trained on.
    """
    from videop2r.learner.batch import RolloutBatchError
    from videop2r.learner.settings import one_update_per_batch

    drop = rows_to_drop(batch, learner.vision, config)
    for reason, n in Counter(drop.values()).items():
        count_skip(reason, n)
    if len(drop) == len(batch):
        count_skip("learner_batch_skipped", 1)
        raise BatchSkipped(f"none of the {len(batch)} rollouts can be trained on ({dict(Counter(drop.values()))})")
    if drop:
        batch = batch.select_idxs([row for row in range(len(batch)) if row not in drop])
    times: dict[str, float] = {}
    try:
        started = time.perf_counter()
        skip_old = config.learner.old_log_prob_pass == "auto" and one_update_per_batch(learner.settings, len(batch))
        if config.trainer.old_log_prob_source == "rollout" and "rollout_log_probs" in batch.batch.keys():
            batch.batch["old_log_probs"] = batch.batch["rollout_log_probs"].clone()
        elif not skip_old:
            batch.batch["old_log_probs"] = learner.compute_log_prob(batch).batch["old_log_probs"]
            times["time/old_log_prob"] = time.perf_counter() - started
        elif "old_log_probs" in batch.batch.keys():  # a placeholder: the workers take π_θ's, detached
            batch.batch = batch.batch.exclude("old_log_probs")
        if config.algorithm.kl_coef > 0:
            started = time.perf_counter()
            batch.batch["ref_log_prob"] = learner.compute_ref_log_prob(batch).batch["ref_log_prob"]
            times["time/ref_log_prob"] = time.perf_counter() - started
        started = time.perf_counter()
        metrics = learner.update_policy(batch)
        times["time/update"] = time.perf_counter() - started
    except RolloutBatchError as exc:  # refused on the driver before any worker saw it
        log.warning("skipping the step's batch: %s", exc)
        count_skip("learner_batch_skipped", 1)
        raise BatchSkipped(str(exc)) from exc
    metrics["learner/dropped_rows"] = float(len(drop))
    metrics["learner/old_log_prob_pass"] = float("old_log_probs" in batch.batch.keys())
    return metrics, times
