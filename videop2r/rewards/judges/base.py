"""The judge interface, its failure types, and the registry that builds a judge by name.

A judge answers one question: does this observation alone suffice to deduce the answer?
Concurrency, retries, caching and the hack guard live in `JudgePipeline`, not in the judges.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from videop2r.rewards.judges.schema import JudgeItem



@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one item; `unparseable` marks a reply that had no readable judgement."""

    sufficient: bool
    reason: str
    unparseable: bool = False


class JudgeError(Exception):
    """A judge could not decide; the item becomes a No marked as an error."""


class TransientJudgeError(JudgeError):
    """Worth retrying: a timeout, a 429, a 5xx, a dropped connection. `retry_after_s` from the server."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Judge(ABC):
    """A perception judge. `name` labels its metrics."""

    name: str = "judge"

    async def start(self) -> None:
        """Load models or open connections; called once before the first `judge`."""

    async def close(self) -> None:
        """Release what `start` acquired."""

    @abstractmethod
    async def judge(self, item: JudgeItem) -> Verdict:
        """Decide one item, or raise `JudgeError` / `TransientJudgeError`."""
