"""Judge a batch: hack guard first, then a cache, then the judge, concurrently and bounded.

- The hack guard refuses an observation before any judge sees it (`refused=true`), and so is
  one longer than `max_observation_chars` (rule "too_long"; a rollout's observation is a few KB).
- Identical (question, options, answer, observation, evidence, reference) are judged once:
  an LRU of verdicts keyed by their SHA-256 digest, bounded in entries and bytes, and concurrent
  duplicates wait for the first call.
- A batch runs in windows of `WINDOW` items, the guard's regexes in a thread, so a 100k-item
  request shares the event loop (health checks, other requests) instead of holding it.
- At most `max_in_flight` judge calls run at once; each has a timeout; timeouts, 429s and 5xx
  are retried with exponential backoff and jitter; after the last attempt (or on any other
  failure) the item is a No with `error=true`. Nothing here raises on a bad judge.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from videop2r.metrics import metric
from videop2r.rewards.hack_guard import GuardDecision, inspect_observation
from videop2r.rewards.judges.base import Judge, JudgeError, TransientJudgeError
from videop2r.rewards.judges.cache import VerdictCache
from videop2r.rewards.judges.registry import build_judge
from videop2r.rewards.judges.schema import JudgeItem, JudgeResult

if TYPE_CHECKING:
    from videop2r.config import RewardConfig

log = logging.getLogger(__name__)

CacheKey = bytes
WINDOW = 256


def cache_key(item: JudgeItem) -> CacheKey:
    """SHA-256 of what a verdict depends on (`id` aside): the record plus the observation.

    Each part is length-prefixed, so no two different items share a key by concatenation."""
    digest = hashlib.sha256()

    def add(text: str | None) -> None:
        data = b"\xff" if text is None else text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for part in (item.question, item.answer, item.observation, item.reference_observation, item.data_type):
        add(part)
    for group in (item.options, item.evidence):
        add(None if group is None else str(len(group)))
        for entry in group or ():
            add(entry)
    return digest.digest()


def _not_an_error(result: JudgeResult) -> bool:
    return not result.error


def _guard_all(items: Sequence[JudgeItem], max_chars: int) -> list[GuardDecision]:
    return [_too_long(item, max_chars) or inspect_observation(item.observation, item.options) for item in items]


def _too_long(item: JudgeItem, max_chars: int) -> GuardDecision | None:
    """Refuse an observation longer than any rollout writes: the guard's and judges' regexes hold
    the interpreter for as long as the text, so it is not looked at."""
    if len(item.observation) <= max_chars:
        return None
    return GuardDecision(True, f"observation of {len(item.observation)} characters, over the limit of {max_chars}",
                         "too_long")


def _result_bytes(result: JudgeResult) -> int:
    return 100 + len(result.reason) + len(str(result.id))


class JudgePipeline:
    """`await pipeline.judge_batch(items)` -> one `JudgeResult` per item, in order."""

    def __init__(
        self,
        judge: Judge,
        *,
        max_in_flight: int = 32,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 8.0,
        cache_size: int = 4096,
        cache_bytes: int | None = 64 * 1024 * 1024,
        max_observation_chars: int = 64 * 1024,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.judge = judge
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_observation_chars = max_observation_chars
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self._slots = asyncio.Semaphore(max_in_flight)
        # errors are not cached: the next step asks the judge again
        self._cache: VerdictCache[JudgeResult] = VerdictCache(cache_size, keep=_not_an_error,
                                                              max_bytes=cache_bytes, weigh=_result_bytes)
        name = judge.name
        self._verdicts = metric("videop2r_judge_verdicts_total", registry)
        self._call_seconds = metric("videop2r_judge_call_seconds", registry).labels(judge=name)
        self._hits = metric("videop2r_judge_cache_hits_total", registry).labels(judge=name)
        self._misses = metric("videop2r_judge_cache_misses_total", registry).labels(judge=name)
        self._in_flight = metric("videop2r_judge_in_flight", registry).labels(judge=name)
        self._retries = metric("videop2r_judge_retries_total", registry).labels(judge=name)
        self._unparseable = metric("videop2r_judge_unparseable_total", registry).labels(judge=name)
        self._refusals = metric("videop2r_judge_refusals_total", registry)

    @classmethod
    def from_config(
        cls, config: "RewardConfig", kind: str | None = None, registry: CollectorRegistry | None = None
    ) -> "JudgePipeline":
        return cls(
            build_judge(config, kind),
            max_in_flight=config.max_in_flight,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            retry_backoff_max_s=config.retry_backoff_max_s,
            cache_size=config.cache_size,
            cache_bytes=config.cache_bytes,
            max_observation_chars=config.max_observation_chars,
            registry=registry,
        )

    async def start(self) -> None:
        await self.judge.start()

    async def close(self) -> None:
        await self.judge.close()

    async def judge_batch(self, items: Sequence[JudgeItem]) -> list[JudgeResult]:
        """Window by window (each bounded by `max_in_flight` backend calls); results in input order."""
        results: list[JudgeResult] = []
        for start in range(0, len(items), WINDOW):
            window = items[start:start + WINDOW]
            guards = await asyncio.to_thread(_guard_all, window, self.max_observation_chars)
            results.extend(await asyncio.gather(*(self.judge_item(item, guard)
                                                  for item, guard in zip(window, guards))))
        return results

    async def judge_item(self, item: JudgeItem, guard: GuardDecision | None = None) -> JudgeResult:
        """One verdict; `guard`: the hack guard's decision if already taken (else taken here)."""
        if guard is None:
            guard = _too_long(item, self.max_observation_chars) or inspect_observation(item.observation, item.options)
        if guard.refused:
            self._refusals.labels(judge=self.judge.name, rule=guard.rule).inc()
            self._count("refused")
            return JudgeResult(id=item.id, sufficient=False, refused=True, reason=f"refused: {guard.reason}")
        result, hit = await self._cache.get_or_compute(cache_key(item), lambda: self._call(item))
        (self._hits if hit else self._misses).inc()
        self._count("error" if result.error else "yes" if result.sufficient else "no")
        if result.error and not hit:
            log.warning("judge %s: item %s scored No after an error: %s", self.judge.name, str(item.id)[:80],
                        result.reason[:300])
        return result.model_copy(update={"id": item.id})

    def _count(self, verdict: str) -> None:
        self._verdicts.labels(judge=self.judge.name, verdict=verdict).inc()

    async def _call(self, item: JudgeItem) -> JudgeResult:
        """One verdict with retries; never raises (except cancellation)."""
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._retries.inc()
            try:
                async with self._slots:
                    self._in_flight.inc()
                    started = time.perf_counter()
                    try:
                        verdict = await asyncio.wait_for(self.judge.judge(item), self.timeout_s)
                    finally:
                        self._call_seconds.observe(time.perf_counter() - started)
                        self._in_flight.dec()
            except (TransientJudgeError, TimeoutError) as exc:
                last_error = str(exc) or f"judge call timed out after {self.timeout_s:g}s"
                if attempt < self.max_retries:
                    await asyncio.sleep(self._backoff(attempt, getattr(exc, "retry_after_s", None)))
                continue
            except JudgeError as exc:
                return JudgeResult(id=item.id, sufficient=False, reason=f"error: {exc}", error=True)
            except Exception as exc:  # a bug in a judge must not take the service down
                log.exception("judge %s crashed on item %s", self.judge.name, item.id)
                reason = f"error: {type(exc).__name__}: {exc}"
                return JudgeResult(id=item.id, sufficient=False, reason=reason, error=True)
            if verdict.unparseable:
                self._unparseable.inc()
            return JudgeResult(id=item.id, sufficient=verdict.sufficient, reason=verdict.reason)
        attempts = self.max_retries + 1
        return JudgeResult(
            id=item.id, sufficient=False, error=True,
            reason=f"error: judge failed after {attempts} attempt{'s' * (attempts > 1)}: {last_error}",
        )

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_backoff_max_s)
        ceiling = min(self.retry_backoff_s * 2**attempt, self.retry_backoff_max_s)
        return ceiling * random.uniform(0.5, 1.0)
