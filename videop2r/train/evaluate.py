"""Held-out evaluation during training: greedy rollouts through the rollout client, scored per process.

Reported per evaluation (all in [0, 1]):
- reasoning_accuracy: mean Acc_t of the parsed `<answer>` (method §2);
- perception_sufficiency: fraction of responses whose observation the judge finds sufficient (method §5);
- format_rate: fraction of responses well-formed in both processes (method §4);
- mismatch_rate: think/answer mismatch among decidable responses;
- by_question: reasoning accuracy per question kind (for a multiple-choice question with one evidence
  fact, that fact's key, e.g. "colour"; else the problem_type).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from videop2r.rollout import RolloutError, sample_payload, sampling_params
from videop2r.data.records import question_kind
from videop2r.rewards.consistency import think_answer_mismatch
from videop2r.train.group_rewards import GroupScorer

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    n: int
    reasoning_accuracy: float
    perception_sufficiency: float
    format_rate: float
    mismatch_rate: float
    failed: int
    seconds: float
    by_question: dict[str, float] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)
    # -- one row per sample (id, kind, accuracy, sufficient, well_formed, mismatch, text); not in as_row
    items: list[dict[str, Any]] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("items")
        return row

    def as_metrics(self) -> dict[str, float]:
        return {"eval/reasoning_accuracy": self.reasoning_accuracy,
                "eval/perception_sufficiency": self.perception_sufficiency,
                "eval/format_rate": self.format_rate, "eval/mismatch_rate": self.mismatch_rate}


async def evaluate(rollout: Any, scorer: GroupScorer, processor: Any, samples: Sequence[Any], *,
                   max_new_tokens: int, blocked_token_ids: Sequence[int] = (), concurrency: int = 64,
                   progress: Any = None) -> EvalResult:
    """Greedy-decode every sample once and score it; a failed rollout counts as wrong (and `failed`)."""
    started = time.perf_counter()
    sampling = sampling_params(None, blocked_token_ids=blocked_token_ids, n=1, temperature=0.0, top_p=1.0,
                               max_new_tokens=max_new_tokens)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, sample: Any) -> tuple[Any, Any] | None:
        async with gate:
            try:
                payload = await asyncio.to_thread(sample_payload, processor, sample, sampling, rid=f"eval-{index}")
                completion = (await rollout.generate(payload))[0]
            except RolloutError as exc:
                log.warning("eval rollout of %s failed: %s", sample.record.problem_id, exc)
                return None
            finally:
                if progress is not None:
                    progress.update(1)
        scored = await scorer.score_group(sample.record, f"eval/{index}", [completion.text])
        return sample, scored[0]

    results = await asyncio.gather(*(one(i, s) for i, s in enumerate(samples)))
    n = len(samples)
    accuracy = sufficiency = formatted = 0.0
    decided = mismatched = failed = 0
    per_kind: dict[str, list[float]] = defaultdict(list)
    examples, items = [], []
    for sample, result in zip(samples, results):
        kind = question_kind(sample.record)
        if result is None:
            failed += 1
            per_kind[kind].append(0.0)
            items.append({"id": str(sample.record.problem_id), "kind": kind, "accuracy": 0.0, "failed": True})
            continue
        _, scored = result
        acc = float(scored.reasoning.accuracy or 0.0)
        accuracy += acc
        sufficiency += float(scored.sufficient)
        formatted += float(scored.well_formed)
        per_kind[kind].append(acc)
        mismatch = think_answer_mismatch(scored.text, sample.record.problem_type)
        if mismatch is not None:
            decided += 1
            mismatched += int(mismatch)
        items.append({"id": str(sample.record.problem_id), "kind": kind, "accuracy": acc,
                      "sufficient": bool(scored.sufficient), "well_formed": bool(scored.well_formed),
                      "mismatch": mismatch, "text": scored.text[:400]})
        if len(examples) < 6:
            examples.append({"id": str(sample.record.problem_id), "response": scored.text[:400],
                             "truth": sample.record.ground_truth or ""})
    return EvalResult(
        n=n,
        reasoning_accuracy=accuracy / n if n else 0.0,
        perception_sufficiency=sufficiency / n if n else 0.0,
        format_rate=formatted / n if n else 0.0,
        mismatch_rate=mismatched / decided if decided else 0.0,
        failed=failed,
        seconds=time.perf_counter() - started,
        by_question={kind: sum(v) / len(v) for kind, v in sorted(per_kind.items())},
        examples=examples,
        items=items,
    )
