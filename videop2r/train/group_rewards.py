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

from videop2r.rewards import ProcessReward, RewardParts, RewardShape, perception_judged
from videop2r.rewards.client import RewardClient, RewardServiceError
from videop2r.rewards.judges.schema import JudgeResult
from videop2r.rewards.requests import judge_item, score_item

log = logging.getLogger(__name__)


@dataclass
class ScoredResponse:
    """Rewards of one response: its `RewardParts` with the judge's verdict filled in."""

    text: str
    perception: ProcessReward
    reasoning: ProcessReward
    verdict: JudgeResult | None

    @property
    def perception_total(self) -> float:
        return float(self.perception.total or 0.0)

    @property
    def reasoning_total(self) -> float:
        return float(self.reasoning.total or 0.0)

    @property
    def sufficient(self) -> bool:
        return bool(self.verdict and self.verdict.sufficient)

    @property
    def well_formed(self) -> bool:
        return bool(self.perception.format) and bool(self.reasoning.format)


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
            sufficient = bool(verdict and verdict.sufficient)
            parts = perception_judged(RewardParts.from_json(line), sufficient, self.shape)
            out.append(ScoredResponse(text, parts.perception, parts.reasoning, verdict))
        return out
