"""Bounded cost and memory of scoring and judging (issue 16): the quadratic scorers' budget, the
exact length shortcut of OCR accuracy, and the judge cache bounded in bytes, keyed by a digest."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from videop2r.rewards import ScoringSettings, score_response
from videop2r.rewards.judges import Judge, JudgeItem, JudgePipeline, Verdict
from videop2r.rewards.judges.cache import KEY_BYTES, VerdictCache
from videop2r.rewards.judges.evidence import fact_stated, tokens
from videop2r.rewards.judges.pipeline import cache_key
from videop2r.rewards.text_metrics import OverBudget, rouge_f_measures, word_accuracy


def _reference_word_accuracy(truth: str, prediction: str) -> float:
    """max(0, 1 - WER) computed the plain way (what ocr_accuracy returned before the shortcut)."""
    distance = Levenshtein.distance(truth.split(), prediction.split())
    return max(0.0, 1.0 - distance / max(1, len(truth.split())))


words = st.lists(st.sampled_from(["a", "b", "c", "dd"]), max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(truth=words, prediction=words)
def test_word_accuracy_with_its_length_shortcut_equals_the_plain_computation(truth, prediction):
    assert word_accuracy(truth, prediction) == pytest.approx(_reference_word_accuracy(truth, prediction))
    assert word_accuracy(truth, prediction, max_cells=144) == pytest.approx(_reference_word_accuracy(truth, prediction))


def test_the_quadratic_scorers_refuse_items_over_the_budget_and_score_those_under_it():
    long = " ".join(["word"] * 3000)
    with pytest.raises(OverBudget, match="3000 x 3000"):
        word_accuracy(long, long, max_cells=1_000_000)
    with pytest.raises(OverBudget):
        rouge_f_measures(long, long, max_cells=1_000_000)
    assert word_accuracy(long, long, max_cells=10_000_000) == 1.0
    assert rouge_f_measures("a dog runs", "a dog ran", max_cells=100) == rouge_f_measures("a dog runs", "a dog ran")
    # a length mismatch of at least the truth's word count is exactly 0 without any budget
    assert word_accuracy("one two", " ".join(["x"] * 100_000), max_cells=1) == 0.0


def test_score_response_applies_the_configured_budget():
    answer = " ".join(["ab"] * 200_000)
    item = {"id": 1, "problem_type": "OCR", "answer": answer,
            "response": f"<observation>x</observation><think>y</think><answer>{answer}</answer>"}
    with pytest.raises(OverBudget):
        score_response(item, ScoringSettings(max_cells=4_000_000))
    small = {**item, "answer": "ab ab", "response": "<observation>x</observation><think>y</think><answer>ab ab</answer>"}
    assert score_response(small, ScoringSettings(max_cells=4_000_000))["reasoning"]["accuracy"] == 1.0


def test_an_empty_evidence_fact_is_not_stated():
    assert not fact_stated(":", tokens("a red ball"), "a red ball")
    assert not fact_stated("colour:", tokens("a red ball"), "a red ball")
    assert fact_stated("colour: red", tokens("a red ball"), "a red ball")


def test_cache_keys_are_digests_that_tell_items_apart():
    base = JudgeItem(id=1, question="q", answer="a", observation="o", evidence=["x: 1"])
    assert cache_key(base) == cache_key(base.model_copy(update={"id": "other"}))
    variants = [base.model_copy(update=change) for change in (
        {"observation": "o2"}, {"question": "q2"}, {"evidence": ["x: 1", ""]}, {"evidence": None},
        {"options": ["x: 1"]}, {"reference_observation": "o"}, {"data_type": "image"})]
    keys = {cache_key(item) for item in [base, *variants]}
    assert len(keys) == 1 + len(variants) and all(len(key) == 32 for key in keys)


def test_the_verdict_cache_stays_within_its_bytes():
    cache: VerdictCache[str] = VerdictCache(10_000, max_bytes=10 * (KEY_BYTES + 100), weigh=len)

    async def fill() -> None:
        for index in range(1000):
            async def compute(index=index) -> str:
                return "x" * 100
            await cache.get_or_compute(index, compute)

    asyncio.run(fill())
    assert len(cache) == 10 and cache.bytes == 10 * (KEY_BYTES + 100)


class _LengthJudge(Judge):
    """Cheap: a verdict from the observation's length, so the test measures the pipeline, not a judge."""

    name = "length"

    async def judge(self, item: JudgeItem) -> Verdict:
        return Verdict(len(item.observation) % 2 == 0, "even" if len(item.observation) % 2 == 0 else "odd")


def test_judging_many_distinct_large_observations_keeps_none_of_them():
    """1,000 distinct 16 KB observations (16 MB): afterwards the pipeline holds its cache (a few
    hundred bytes an entry, within cache_bytes), not the observations."""
    pipeline = JudgePipeline(_LengthJudge(), cache_size=4096, cache_bytes=1 << 20)
    filler = "the ball is red and it moves. " * 540

    async def judge_all() -> None:
        for start in range(0, 1000, 250):
            items = [JudgeItem(id=i, question="q", answer="a", observation=f"{i} {filler}")
                     for i in range(start, start + 250)]
            results = await pipeline.judge_batch(items)
            assert not any(result.error or result.refused for result in results)

    tracemalloc.start()
    try:
        asyncio.run(judge_all())
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(pipeline._cache) == 1000 and pipeline._cache.bytes <= 1 << 20
    assert current < 2 * 1024 * 1024, current


def test_an_observation_longer_than_the_limit_is_refused_unread():
    pipeline = JudgePipeline(_LengthJudge(), max_observation_chars=1000)
    items = [JudgeItem(id=1, question="q", answer="a", observation="x" * 1001),
             JudgeItem(id=2, question="q", answer="a", observation="x" * 1000)]
    long, short = asyncio.run(pipeline.judge_batch(items))
    assert long.refused and not long.sufficient and "over the limit of 1000" in long.reason
    assert not short.refused and short.sufficient
