"""Batch concurrent requests onto the one engine thread, in arrival order.

Requests queue up while a batch is generating; when the engine is free, everything waiting is
taken as the next batch (up to ``max_batch_rows`` samples; a request is never split), so N
concurrent clients share prefills-then-decode passes instead of running one after another.
Exclusive operations (weight reloads) go through the same queue: requests queued before a reload
run on the old weights, requests after it on the new ones, and a reload never overlaps a batch.
This is static batching per pass, not SGLang's continuous batching: a request arriving mid-pass
waits for the pass to end.

Isolation: a request is checked against the engine's own limits (`GenerationEngine.check_job`)
before it joins a batch, and if a batch still fails, its requests are run again one by one, so
the request that fails fails alone with its own error and the others complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from services.rollout.engine import GenerationEngine
from services.rollout.prompt_job import JobResult, PromptJob

log = logging.getLogger(__name__)


@dataclass
class _Work:
    jobs: list[PromptJob] | None
    action: Callable[[], Any] | None
    future: asyncio.Future

    @property
    def rows(self) -> int:
        return sum(job.sampling.n for job in self.jobs or [])


class BatchScheduler:
    """Owns the engine thread; ``submit`` generation work, ``exclusive`` anything else."""

    def __init__(self, engine: GenerationEngine, max_batch_rows: int = 64) -> None:
        self.engine = engine
        self.max_batch_rows = max_batch_rows
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-engine")
        self._queue: asyncio.Queue[_Work] | None = None
        self._task: asyncio.Task | None = None
        self._held: _Work | None = None
        self.batches = 0
        self.running = False

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="rollout-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def waiting(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (1 if self._held else 0)

    async def submit(self, jobs: list[PromptJob]) -> list[JobResult]:
        """Generate `jobs` in some upcoming batch; results in job order. Raises `InvalidJob` (before
        queueing) for a job the engine cannot run, or the error of its own failed pass."""
        for job in jobs:
            self.engine.check_job(job)
        return await self._enqueue(_Work(jobs, None, asyncio.get_running_loop().create_future()))

    async def exclusive(self, action: Callable[[], Any]) -> Any:
        """Run `action()` on the engine thread with no batch running."""
        return await self._enqueue(_Work(None, action, asyncio.get_running_loop().create_future()))

    async def _enqueue(self, work: _Work) -> Any:
        if self._queue is None:
            raise RuntimeError("scheduler not started")
        await self._queue.put(work)
        return await work.future

    async def _loop(self) -> None:
        while True:
            first = self._held or await self._queue.get()
            self._held = None
            if first.action is not None:
                await self._run(first, lambda: first.action(), [first])
                continue
            batch = [first]
            rows = first.rows
            while not self._queue.empty():
                work = self._queue.get_nowait()
                if work.action is not None or rows + work.rows > self.max_batch_rows:
                    self._held = work  # next pass starts with it
                    break
                batch.append(work)
                rows += work.rows
            live = [work for work in batch if not work.future.done()]  # cancelled clients
            if not live:
                continue
            await self._generate(live)
            await asyncio.sleep(0)  # let the finished requests respond before the next pass

    async def _generate(self, live: list[_Work]) -> None:
        """One pass over `live`; if it fails with more than one request in it, each runs alone."""
        jobs = [job for work in live for job in work.jobs]
        self.batches += 1
        if len(live) == 1:
            results = await self._run(None, lambda: self.engine.generate(jobs), live)
        else:
            failed: list[Exception] = []
            results = await self._run(None, lambda: self.engine.generate(jobs), [], failed)
            if results is None:
                log.warning("a batch of %d requests failed (%s); running them one by one",
                            len(live), str(failed[0])[:200])
                for work in live:
                    if not work.future.done():
                        await self._generate([work])
                return
        if results is None:
            return
        start = 0
        for work in live:
            count = len(work.jobs)
            if not work.future.done():
                work.future.set_result(results[start:start + count])
            start += count

    async def _run(self, single: _Work | None, call: Callable[[], Any], waiters: list[_Work],
                   failed: list[Exception] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        self.running = True
        try:
            result = await loop.run_in_executor(self.executor, call)
        except Exception as exc:  # noqa: BLE001 - reported to every waiter, the loop goes on
            if failed is not None:
                failed.append(exc)
            elif single is None:
                log.warning("a generation pass failed: %s", str(exc)[:300], exc_info=exc)
            for work in waiters:
                if not work.future.done():
                    work.future.set_exception(exc)
            return None
        finally:
            self.running = False
        if single is not None and not single.future.done():
            single.future.set_result(result)
        return result
