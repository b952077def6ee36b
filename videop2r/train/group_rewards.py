"""Per-process rewards of one prompt's rollouts through the reward services, with a local fallback.

Accuracy (format, Acc_t, length) and the perception judge are asked concurrently for the whole
group — never one sample at a time. If every endpoint of a service fails, the group is scored
in-process with the same library (the services are thin wrappers around it), the failure is
counted, and the step goes on: a dead reward pod costs latency, not the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from videop2r.rewards import RewardShape, segment_response, with_perception_verdict
from videop2r.rewards.client import RewardClient, RewardServiceError
from videop2r.rewards.judges.schema import JudgeResult

log = logging.getLogger(__name__)


@dataclass
class ScoredResponse:
    """Rewards of one response: the `score_response` dict with the judge's verdict filled in."""

    text: str
    perception: dict[str, Any]
    reasoning: dict[str, Any]
    verdict: JudgeResult | None

    @property
    def perception_total(self) -> float:
        return float(self.perception.get("total", 0.0))

    @property
    def reasoning_total(self) -> float:
        return float(self.reasoning.get("total", 0.0))

    @property
    def sufficient(self) -> bool:
        return bool(self.verdict and self.verdict.sufficient)

    @property
    def well_formed(self) -> bool:
        return bool(self.perception.get("format")) and bool(self.reasoning.get("format"))


def score_item(record: Any, item_id: str, response: str) -> dict[str, Any]:
    """A reward-accuracy request (`videop2r rewards score` input line) for one response."""
    item: dict[str, Any] = {"id": item_id, "problem_type": record.problem_type, "response": response}
    if record.solution is not None:
        item["solution"] = record.solution
    if record.answer is not None:
        item["answer"] = record.answer
    if record.options:
        item["options"] = list(record.options)
    return item


def judge_item(record: Any, item_id: str, response: str) -> dict[str, Any] | None:
    """A reward-judge request for the response's observation; None when it has no observation."""
    segments = segment_response(response)
    if segments.perception is None:
        return None
    item: dict[str, Any] = {
        "id": item_id,
        "question": record.problem,
        "answer": record.ground_truth or "",
        "observation": segments.perception.of(response),
        "data_type": record.data_type,
    }
    if record.options:
        item["options"] = list(record.options)
    if record.evidence:
        item["evidence"] = list(record.evidence)
    if record.observation:
        item["reference_observation"] = record.observation
    return item


class GroupScorer:
    """Scores groups of responses; `remote` may have endpoints, `local` scores in-process."""

    def __init__(self, remote: RewardClient, local: RewardClient, shape: RewardShape,
                 on_fallback: Any = None) -> None:
        self.remote = remote
        self.local = local
        self.shape = shape
        self.on_fallback = on_fallback or (lambda service, error: None)

    async def _score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            return await self.remote.score(items)
        except RewardServiceError as exc:
            log.warning("reward-accuracy unavailable (%s); scoring %d items in-process", exc, len(items))
            self.on_fallback("reward-accuracy", exc)
            return await self.local.score(items)

    async def _judge(self, items: list[dict[str, Any]]) -> list[JudgeResult]:
        if not items:
            return []
        try:
            return await self.remote.judge(items)
        except RewardServiceError as exc:
            log.warning("reward-judge unavailable (%s); judging %d items in-process", exc, len(items))
            self.on_fallback("reward-judge", exc)
            return await self.local.judge(items)

    async def score_group(self, record: Any, uid: str, responses: Sequence[str]) -> list[ScoredResponse]:
        """Rewards of `responses` to `record`, in order."""
        ids = [f"{uid}/{index}" for index in range(len(responses))]
        judge_items = [judge_item(record, item_id, text) for item_id, text in zip(ids, responses)]
        wanted = [item for item in judge_items if item is not None]
        scored, verdicts = await asyncio.gather(
            self._score([score_item(record, item_id, text) for item_id, text in zip(ids, responses)]),
            self._judge(wanted),
        )
        by_id = {str(result.id): result for result in verdicts}
        out = []
        for item_id, text, line in zip(ids, responses, scored):
            verdict = by_id.get(item_id)
            full = with_perception_verdict(line, bool(verdict and verdict.sufficient), self.shape)
            out.append(ScoredResponse(text, full["perception"], full["reasoning"], verdict))
        return out
