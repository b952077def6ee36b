"""Judges by name: an explicit table, so the judge modules import `base` and nothing imports them back."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from videop2r.rewards.judges.base import Judge
from videop2r.rewards.judges.embedding import embedding_from_config  # imports torch only in start()
from videop2r.rewards.judges.evidence import evidence_from_config
from videop2r.rewards.judges.openai_judge import openai_from_config

if TYPE_CHECKING:
    from videop2r.config import RewardConfig

JudgeFactory = Callable[["RewardConfig"], Judge]

JUDGES: dict[str, JudgeFactory] = {
    "embedding": embedding_from_config,
    "evidence": evidence_from_config,
    "openai": openai_from_config,
}


def build_judge(config: RewardConfig, kind: str | None = None) -> Judge:
    """The judge named by `kind` (default `config.judge`), configured from `config`."""
    kind = kind or config.judge
    factory = JUDGES.get(kind)
    if factory is None:
        raise ValueError(f"unknown judge {kind!r}; known: {', '.join(registered_judges())}")
    return factory(config)


def registered_judges() -> list[str]:
    return sorted(JUDGES)
