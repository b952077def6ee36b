"""CPU-bound scoring (format, Acc_t, length) in a pool of worker processes sized to the pod's CPUs.

Workers are spawned (not forked: the service process runs threads and an event loop) and each
builds its scoring settings once. A request's items go out as plain JSON data in chunks, at most
one per worker; the workers validate them (`ScoreRequest`) and score them, so the service
process only parses and serialises JSON. Lines come back in order. A dead worker breaks a
`ProcessPoolExecutor`; the pool is then rebuilt and the chunk tried once more.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)

_worker_settings: Any = None

# One item per problem type: scoring them once in each worker at start-up pays every lazy
# import (ROUGE, stemmer, tokenizer) before the first real request.
_WARM_UP = "<observation>a red ball</observation><think>it is red</think><answer>{}</answer>"
WARM_UP_ITEMS: list[dict[str, Any]] = [
    {"id": "warm-up-mc", "problem_type": "multiple choice", "response": _WARM_UP.format("A"), "answer": "A",
     "options": ["A. red", "B. blue"]},
    {"id": "warm-up-num", "problem_type": "numerical", "response": _WARM_UP.format("3"), "answer": "3"},
    {"id": "warm-up-ocr", "problem_type": "OCR", "response": _WARM_UP.format("red ball"),
     "answer": "red ball"},
    {"id": "warm-up-free", "problem_type": "free-form", "response": _WARM_UP.format("a red ball rolls"),
     "answer": "a red ball rolls left"},
    {"id": "warm-up-reg", "problem_type": "regression", "response": _WARM_UP.format("2.5"), "answer": "3.0"},
]


def _init_worker(sections: dict[str, Any]) -> None:
    """Build the scoring settings (reward shape, tokenizer) once per worker from config sections."""
    global _worker_settings
    from videop2r.config import VideoP2RConfig
    from videop2r.rewards import ScoringSettings

    _worker_settings = ScoringSettings.from_config(VideoP2RConfig.model_validate(sections))


def _ping() -> int:
    import os
    import time

    time.sleep(0.05)  # long enough that every warm-up task lands on its own worker
    return os.getpid()


class InvalidItems(ValueError):
    """Request items that are not `ScoreRequest`s; `problems` are "items.<i>.<field>: <message>"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _problems(index: int, exc: Exception) -> list[str]:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return [f"items.{index}: {exc}"]
    return [".".join([f"items.{index}", *(str(part) for part in error["loc"])]) + f": {error['msg']}"
            for error in exc.errors()]


def score_chunk(items: list[Any], offset: int = 0) -> dict[str, list[Any]]:
    """Validate and score request items in a worker: ``{"lines": [...]}`` or ``{"invalid": [...]}``.

    `offset` is the index of `items[0]` in the request, for error messages. Every item is
    validated (an unknown problem_type included) before any is scored; a valid item that makes
    the scorer raise, or that is over the compute budget, becomes ``{"id": ..., "error": "..."}``
    instead of failing the whole request (``over_budget`` counts the latter).
    """
    from videop2r.rewards import ScoreRequest, UnknownProblemType, parse_problem_type, score_response
    from videop2r.rewards.text_metrics import OverBudget

    requests, invalid = [], []
    for index, item in enumerate(items, start=offset):
        try:
            request = ScoreRequest.model_validate(item)
            parse_problem_type(request.problem_type)
            requests.append(request)
        except UnknownProblemType as exc:
            invalid.append(f"items.{index}.problem_type: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001 — a ValidationError, or worse; reported to the caller
            invalid.extend(_problems(index, exc))
    if invalid:
        return {"invalid": invalid}
    lines, over_budget = [], 0
    for request in requests:
        try:
            lines.append(score_response(request, _worker_settings))
        except OverBudget as exc:
            over_budget += 1
            lines.append({"id": request.id, "error": f"OverBudget: {exc}"})
        except Exception as exc:  # noqa: BLE001 — reported per item, counted by the service
            lines.append({"id": request.id, "error": f"{type(exc).__name__}: {exc}"[:500]})
    return {"lines": lines, "over_budget": [over_budget]}


class ScoringPool:
    """`await pool.score(items)` -> output lines in input order (items: JSON data of `ScoreRequest`s)."""

    def __init__(self, workers: int, sections: dict[str, Any], min_chunk: int = 8) -> None:
        """`sections`: the config's `reward` and `algorithm` sections as plain data (they cross a process)."""
        self.workers = workers
        self.min_chunk = min_chunk
        self._sections = sections
        self._executor: ProcessPoolExecutor | None = None
        self._rebuild = asyncio.Lock()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._sections,),
        )

    async def start(self) -> None:
        """Spawn every worker and import the scorer in it, so the first request pays nothing."""
        if self._executor is None:
            self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ping) for _ in range(self.workers)))
        warmed = await asyncio.gather(*(loop.run_in_executor(self._executor, score_chunk, WARM_UP_ITEMS)
                                        for _ in range(self.workers)))
        failed = [line for reply in warmed for line in reply.get("lines", []) if "error" in line]
        failed += [{"error": problem} for reply in warmed for problem in reply.get("invalid", [])]
        if failed:
            raise RuntimeError(f"scoring does not work in the worker processes: {failed[0]['error']}")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def chunks(self, items: list[Any]) -> list[tuple[int, list[Any]]]:
        """(offset, items) pieces: one per worker, at least `min_chunk` items each."""
        if not items:
            return []
        size = max(self.min_chunk, math.ceil(len(items) / self.workers))
        return [(start, items[start:start + size]) for start in range(0, len(items), size)]

    async def score(self, items: list[Any]) -> list[dict[str, Any]]:
        """Output lines in input order, or `InvalidItems` naming every bad field."""
        lines, _ = await self.score_counted(items)
        return lines

    async def score_counted(self, items: list[Any]) -> tuple[list[dict[str, Any]], int]:
        """(output lines in input order, how many items were over the compute budget)."""
        pieces = self.chunks(items)
        replies = await asyncio.gather(*(self._score_chunk(offset, chunk) for offset, chunk in pieces))
        problems = [problem for reply in replies for problem in reply.get("invalid", [])]
        if problems:
            raise InvalidItems(problems)
        over_budget = sum(count for reply in replies for count in reply.get("over_budget", []))
        return [line for reply in replies for line in reply["lines"]], over_budget

    async def _score_chunk(self, offset: int, chunk: list[Any]) -> dict[str, list[Any]]:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            executor = self._executor
            if executor is None:
                raise RuntimeError("scoring pool is not started")
            try:
                return await loop.run_in_executor(executor, score_chunk, chunk, offset)
            except BrokenProcessPool:
                if attempt:
                    raise
                log.error("a scoring worker died; rebuilding the pool of %d workers", self.workers)
                async with self._rebuild:
                    if self._executor is executor:
                        executor.shutdown(wait=False, cancel_futures=True)
                        self._executor = self._new_executor()
        raise AssertionError("unreachable")
