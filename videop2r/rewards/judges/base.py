"""The judge interface, its failure types, and the registry that builds a judge by name.

A judge answers one question: does this observation alone suffice to deduce the answer?
Concurrency, retries, caching and the hack guard live in `JudgePipeline`, not in the judges.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from videop2r.rewards.judges.schema import JudgeItem

if TYPE_CHECKING:
    from videop2r.config import RewardConfig


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


JudgeFactory = Callable[["RewardConfig"], Judge]
_REGISTRY: dict[str, JudgeFactory] = {}


def register_judge(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    """Register a judge factory under `name`; a second, different factory for a taken name is an error."""

    def decorate(factory: JudgeFactory) -> JudgeFactory:
        taken = _REGISTRY.get(name)
        if taken is not None and taken is not factory:
            raise ValueError(f"judge {name!r} is already registered to {taken.__qualname__}")
        _REGISTRY[name] = factory
        return factory

    return decorate


def build_judge(config: "RewardConfig", kind: str | None = None) -> Judge:
    """The judge named by `kind` (default `config.judge`), configured from `config`."""
    # Importing the modules registers them; the embedding judge imports torch only in start().
    from videop2r.rewards.judges import embedding, evidence, openai_judge  # noqa: F401

    kind = kind or config.judge
    factory = _REGISTRY.get(kind)
    if factory is None:
        raise ValueError(f"unknown judge {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return factory(config)


def registered_judges() -> list[str]:
    from videop2r.rewards.judges import embedding, evidence, openai_judge  # noqa: F401

    return sorted(_REGISTRY)
