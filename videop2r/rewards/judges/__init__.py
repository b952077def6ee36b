"""Perception judges (method §5) and the pipeline that runs them: hack guard, cache, bounded concurrency.

Judges by name: `openai` (an LLM behind any chat-completions endpoint), `evidence` (ground-truth
facts of the synthetic set), `embedding` (MiniLM similarity to a reference observation).
"""

from videop2r.rewards.judges.base import (
    Judge,
    JudgeError,
    TransientJudgeError,
    Verdict,
)
from videop2r.rewards.judges.pipeline import JudgePipeline
from videop2r.rewards.judges.registry import JUDGES, build_judge, registered_judges
from videop2r.rewards.judges.schema import JudgeBatch, JudgeBatchResult, JudgeItem, JudgeResult

__all__ = [
    "JUDGES",
    "Judge",
    "JudgeBatch",
    "JudgeBatchResult",
    "JudgeError",
    "JudgeItem",
    "JudgePipeline",
    "JudgeResult",
    "TransientJudgeError",
    "Verdict",
    "build_judge",
    "registered_judges",
]
