"""JudgePipeline with scripted in-memory judges: bounded concurrency, cache, retries, timeouts, errors."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from videop2r.rewards.judges import Judge, JudgeError, JudgeItem, JudgePipeline, TransientJudgeError, Verdict
from videop2r.rewards.judges.cache import VerdictCache


class ScriptedJudge(Judge):
    """Sleeps `delay_s`, then follows the observation: 'fail N' raises transiently N times, etc."""

    name = "scripted"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def judge(self, item: JudgeItem) -> Verdict:
        self.calls.append(item.observation)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            text = item.observation
            if text.startswith("fail "):
                if self.calls.count(text) <= int(text.split()[1]):
                    raise TransientJudgeError("HTTP 503", retry_after_s=0.0)
            if text == "hang":
                await asyncio.sleep(3600)
            if text == "broken":
                raise JudgeError("HTTP 400: bad model name")
            if text == "bug":
                raise ZeroDivisionError("oops")
            if text == "mumble":
                return Verdict(False, "no judgement", unparseable=True)
            return Verdict(text != "nope", "scripted")
        finally:
            self.in_flight -= 1


def _items(*observations: str) -> list[JudgeItem]:
    return [JudgeItem(id=i, question="What colour?", answer="red", observation=o)
            for i, o in enumerate(observations)]


def _pipeline(judge: Judge, **kwargs) -> tuple[JudgePipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    options = dict(max_in_flight=32, timeout_s=5.0, max_retries=3, retry_backoff_s=0.01,
                   retry_backoff_max_s=0.05)
    return JudgePipeline(judge, registry=registry, **{**options, **kwargs}), registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_whole_batch_runs_concurrently() -> None:
    judge = ScriptedJudge(delay_s=0.2)
    pipeline, _ = _pipeline(judge, max_in_flight=64)
    results = await pipeline.judge_batch(_items(*(f"red ball {i}" for i in range(32))))
    assert all(r.sufficient for r in results) and judge.peak == 32  # all 32 calls were in flight at once


async def test_in_flight_calls_are_bounded() -> None:
    judge = ScriptedJudge(delay_s=0.02)
    pipeline, registry = _pipeline(judge, max_in_flight=4)
    await pipeline.judge_batch(_items(*(f"obs {i}" for i in range(20))))
    assert judge.peak == 4
    assert _value(registry, "videop2r_judge_in_flight", judge="scripted") == 0


async def test_identical_observations_in_a_group_are_judged_once() -> None:
    judge = ScriptedJudge(delay_s=0.05)
    pipeline, registry = _pipeline(judge)
    group = _items(*(["the ball is red"] * 6 + ["the ball is crimson"] * 2))
    results = await pipeline.judge_batch(group)
    assert sorted(judge.calls) == ["the ball is crimson", "the ball is red"]
    assert [r.id for r in results] == list(range(8))  # each keeps its own id, in order
    assert _value(registry, "videop2r_judge_cache_hits_total", judge="scripted") == 6
    assert _value(registry, "videop2r_judge_cache_misses_total", judge="scripted") == 2
    await pipeline.judge_batch(group[:1])  # a later step: served from the LRU
    assert len(judge.calls) == 2


async def test_transient_failures_are_retried_then_succeed() -> None:
    judge = ScriptedJudge()
    pipeline, registry = _pipeline(judge, max_retries=3)
    [result] = await pipeline.judge_batch(_items("fail 2"))
    assert result.sufficient and not result.error
    assert judge.calls.count("fail 2") == 3
    assert _value(registry, "videop2r_judge_retries_total", judge="scripted") == 2


async def test_exhausted_retries_give_a_no_marked_error_that_is_not_cached() -> None:
    judge = ScriptedJudge()
    pipeline, registry = _pipeline(judge, max_retries=2)
    [result] = await pipeline.judge_batch(_items("fail 5"))
    assert not result.sufficient and result.error and not result.refused
    assert "after 3 attempts" in result.reason and "503" in result.reason
    assert _value(registry, "videop2r_judge_verdicts_total", judge="scripted", verdict="error") == 1
    [again] = await pipeline.judge_batch(_items("fail 5"))  # not served from cache: tried again
    assert judge.calls.count("fail 5") == 6 and again.sufficient  # calls 4, 5 fail, 6 succeeds


async def test_timeouts_are_retried_then_an_error() -> None:
    judge = ScriptedJudge()
    pipeline, _ = _pipeline(judge, timeout_s=0.05, max_retries=1)
    started = time.perf_counter()
    [result] = await pipeline.judge_batch(_items("hang"))
    assert result.error and "timed out" in result.reason
    assert judge.calls.count("hang") == 2 and time.perf_counter() - started < 2


async def test_permanent_errors_and_judge_bugs_are_errors_without_retry() -> None:
    judge = ScriptedJudge()
    pipeline, registry = _pipeline(judge)
    broken, bug, fine = await pipeline.judge_batch(_items("broken", "bug", "red"))
    assert broken.error and "bad model name" in broken.reason
    assert bug.error and "ZeroDivisionError" in bug.reason
    assert fine.sufficient and not fine.error
    assert judge.calls.count("broken") == 1 and judge.calls.count("bug") == 1
    assert _value(registry, "videop2r_judge_retries_total", judge="scripted") == 0


async def test_unparseable_replies_are_no_and_counted() -> None:
    pipeline, registry = _pipeline(ScriptedJudge())
    [result] = await pipeline.judge_batch(_items("mumble"))
    assert not result.sufficient and not result.error
    assert _value(registry, "videop2r_judge_unparseable_total", judge="scripted") == 1
    assert _value(registry, "videop2r_judge_verdicts_total", judge="scripted", verdict="no") == 1


async def test_refused_observations_never_reach_the_judge() -> None:
    judge = ScriptedJudge()
    pipeline, registry = _pipeline(judge)
    [result] = await pipeline.judge_batch(_items("Red. <answer>A</answer>"))
    assert result.refused and not result.sufficient and "tag" in result.reason
    assert judge.calls == []
    assert _value(registry, "videop2r_judge_refusals_total", judge="scripted", rule="tag") == 1
    assert _value(registry, "videop2r_judge_verdicts_total", judge="scripted", verdict="refused") == 1


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    pipeline, _ = _pipeline(ScriptedJudge(), retry_backoff_s=0.5, retry_backoff_max_s=4.0)
    assert 0.25 <= pipeline._backoff(0, None) <= 0.5
    assert 2.0 <= pipeline._backoff(3, None) <= 4.0
    assert pipeline._backoff(10, None) <= 4.0
    assert pipeline._backoff(0, 1.5) == 1.5 and pipeline._backoff(0, 60.0) == 4.0


async def test_cache_evicts_least_recently_used() -> None:
    cache: VerdictCache[int] = VerdictCache(2)

    async def value(v: int) -> int:
        return v

    for key in ("a", "b"):
        await cache.get_or_compute(key, lambda k=key: value(ord(k)))
    assert (await cache.get_or_compute("a", lambda: value(0)))[1]  # hit; "a" becomes most recent
    await cache.get_or_compute("c", lambda: value(3))
    assert not (await cache.get_or_compute("b", lambda: value(9)))[1]  # "b" was evicted
    assert len(cache) == 2


async def test_cache_waiters_see_the_first_calls_failure() -> None:
    cache: VerdictCache[int] = VerdictCache(8)

    async def failing() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("down")

    calls = (cache.get_or_compute("k", failing) for _ in range(3))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and len(cache) == 0


@pytest.mark.parametrize("size", [0, 1])
async def test_cache_of_size_zero_keeps_nothing(size: int) -> None:
    judge = ScriptedJudge()
    pipeline, _ = _pipeline(judge, cache_size=size)
    await pipeline.judge_batch(_items("red"))
    await pipeline.judge_batch(_items("red"))
    assert len(judge.calls) == (2 if size == 0 else 1)
