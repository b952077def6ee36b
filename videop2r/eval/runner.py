"""Run benchmarks against a model, resumably: per-item JSONL in, a `BenchmarkReport` per benchmark out.

For each benchmark the adapter's items are read, the ones already finished in
``<output>/<benchmark>.jsonl`` are skipped, and the rest are answered by `concurrency` workers:
decode the medium (at most `decode_workers` at once, in threads), ask the policy, score, append
the line. Nothing about one item can stop the run:

========================  =====================================================  ===========
status                    cause                                                  on rerun
========================  =====================================================  ===========
ok                        the response has an answer (scored by the metric)      done
no_answer                 the response has no ``<answer>`` block (scored 0)      done
bad_row                   the annotation row is unreadable or inconsistent       done
missing_media             the video / frames are not in the release              done
bad_media                 the medium cannot be decoded or sampled                done
request_rejected          the server refused the request (4xx: too long, ...)    done
request_failed            the server could not be reached after retries          retried
========================  =====================================================  ===========

Every status but ``ok`` scores 0 and is listed in the summary. After `max_consecutive_failures`
unreachable-server failures in a row the run stops (`EndpointDown`), keeping every finished line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videop2r.config import EvalConfig
from videop2r.data.media import MediaError
from videop2r.eval.benchmarks import BenchmarkAdapter
from videop2r.eval.blind import blank
from videop2r.eval.chat_client import ChatClient, ChatError
from videop2r.eval.clips import MediaLoader, inference_data_config, media_error_reason
from videop2r.eval.items import BadRow, EvalItem
from videop2r.eval.ledger import Ledger
from videop2r.eval.policy import Policy, RequestFailed, RequestRejected
from videop2r.eval.scoring import score_item
from videop2r.eval.source import AnnotationError, BenchmarkSource
from videop2r.eval.sufficiency import answer_from_observation
from videop2r.metrics import metric

log = logging.getLogger(__name__)

STATUSES = ("ok", "no_answer", "bad_row", "missing_media", "bad_media", "request_rejected", "request_failed")
RETRIED = frozenset({"request_failed"})
FAILURES_LISTED = 50  # per benchmark in the summary; all of them are in the JSONL


class EndpointDown(RuntimeError):
    """Too many requests in a row could not reach the model; finished items are kept."""


@dataclass
class BenchmarkReport:
    """What one benchmark run produced (the summary reads these)."""

    name: str
    title: str
    paper_column: bool
    items: int = 0
    score: float | None = None
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    format_rate: float | None = None
    mismatch_rate: float | None = None
    sufficiency: float | None = None
    sufficiency_items: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    failures_total: int = 0
    error: str | None = None
    # -- why the run stopped early (a dead endpoint); the items not reached count as failed
    stopped: str | None = None
    resumed: int = 0
    seconds: float = 0.0


def result_path(out_dir: Path, benchmark: str) -> Path:
    return Path(out_dir) / f"{benchmark}.jsonl"


class BenchmarkRunner:
    """Answers the items of one benchmark with `policy` and records them in its ledger."""

    def __init__(
        self,
        adapter: BenchmarkAdapter,
        source: BenchmarkSource,
        policy: Policy,
        out_dir: Path,
        config: EvalConfig,
        *,
        sufficiency: ChatClient | None = None,
        progress: bool = True,
        registry: Any = None,
        blind: bool = False,
    ) -> None:
        self.adapter = adapter
        self.blind = blind  # --blind's second pass: every frame blanked (videop2r.eval.blind)
        self.source = source
        self.policy = policy
        self.config = config
        self.sufficiency = sufficiency
        self.progress = progress
        self.loader = MediaLoader(
            source, inference_data_config(config), keep_source=config.chat_media == "video_url"
        )
        self.ledger_path = result_path(out_dir, adapter.name)
        self._items_total = metric("videop2r_eval_items_total", registry)
        self._consecutive_failures = 0

    async def run(self) -> BenchmarkReport:
        report = BenchmarkReport(self.adapter.name, self.adapter.title, self.adapter.paper_column)
        started = time.perf_counter()
        try:
            rows = self._read_items()
        except AnnotationError as exc:
            log.error("%s: %s", self.adapter.name, exc)
            report.error = str(exc)
            return report
        except Exception as exc:  # noqa: BLE001 - a broken release costs its benchmark, not the run
            log.exception("%s: cannot read the annotations", self.adapter.name)
            report.error = f"cannot read the annotations: {type(exc).__name__}: {exc}"
            return report
        with Ledger(self.ledger_path) as ledger:
            todo = [row for row in rows if _pending(ledger.get(row.id))]
            report.resumed = len(rows) - len(todo)
            if report.resumed:
                log.info(
                    "%s: %d of %d items already finished in %s",
                    self.adapter.name,
                    report.resumed,
                    len(rows),
                    self.ledger_path,
                )
            try:
                await self._answer_all(todo, ledger)
            except EndpointDown as exc:
                report.stopped = str(exc)
            finally:
                results = [ledger.get(row.id) or _lost(row) for row in rows]
                self._fill(report, results)
        report.seconds = time.perf_counter() - started
        return report

    def _read_items(self) -> list[EvalItem | BadRow]:
        rows: list[EvalItem | BadRow] = []
        for row in self.adapter.items(self.source):
            rows.append(row)
            if self.config.limit and len(rows) >= self.config.limit:
                break
        if not rows:
            raise AnnotationError(f"{self.source.uri}: the annotations hold no {self.adapter.title} question")
        return rows

    async def _answer_all(self, todo: list[EvalItem | BadRow], ledger: Ledger) -> None:
        from tqdm import tqdm

        queue: asyncio.Queue[EvalItem | BadRow] = asyncio.Queue()
        for row in todo:
            queue.put_nowait(row)
        decode_gate = asyncio.Semaphore(self.config.decode_workers)
        bar = tqdm(total=len(todo), desc=f"eval {self.adapter.name}", unit="item", disable=not self.progress)
        stop: list[BaseException] = []

        async def worker() -> None:
            while not stop and not queue.empty():
                row = queue.get_nowait()
                try:
                    line = await self._answer(row, decode_gate)
                except EndpointDown as exc:
                    stop.append(exc)
                    return
                ledger.append(line)
                self._items_total.labels(benchmark=self.adapter.name, status=line["status"]).inc()
                bar.update(1)

        try:
            await asyncio.gather(*(worker() for _ in range(min(self.config.concurrency, max(len(todo), 1)))))
        finally:
            bar.close()
        if stop:
            raise stop[0]

    async def _answer(self, row: EvalItem | BadRow, decode_gate: asyncio.Semaphore) -> dict[str, Any]:
        if isinstance(row, BadRow):
            return bad_row_line(row)
        started = time.perf_counter()
        base = {
            "id": row.id,
            "metric": row.metric,
            "groups": row.groups,
            "problem_type": row.problem_type,
            "truth": row.answer,
        }
        try:
            async with decode_gate:
                media = await asyncio.to_thread(self.loader.load, row.media)
        except MediaError as exc:
            return {**base, "status": media_error_reason(exc), "score": 0.0, "error": f"{exc.reason}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - one odd file must not end the run
            log.exception(
                "%s: item %s: unexpected error loading %s", self.adapter.name, row.id, row.media.keys[0]
            )
            return {**base, "status": "bad_media", "score": 0.0, "error": f"{type(exc).__name__}: {exc}"}
        if self.blind:
            media = blank(media)
        try:
            response = await self.policy.respond(row.prompt_fields(), media)
        except RequestRejected as exc:
            return {**base, "status": "request_rejected", "score": 0.0, "error": str(exc)}
        except RequestFailed as exc:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.config.max_consecutive_failures:
                raise EndpointDown(
                    f"{self._consecutive_failures} requests in a row failed; last: {exc}"
                ) from exc
            return {**base, "status": "request_failed", "score": 0.0, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug on one request is reported with the item, not fatal
            log.exception("%s: item %s: unexpected error from the model request", self.adapter.name, row.id)
            return {
                **base,
                "status": "request_rejected",
                "score": 0.0,
                "error": f"{type(exc).__name__}: {exc}",
            }
        self._consecutive_failures = 0
        scored = score_item(row, response)
        line = {
            **base,
            "status": "ok" if scored.prediction is not None else "no_answer",
            "score": scored.score,
            "prediction": scored.prediction,
            "format_ok": scored.format_ok,
            "mismatch": scored.mismatch,
            "observation": scored.observation,
            "response": response,
        }
        if self.sufficiency is not None and scored.observation:
            line["sufficiency"] = await self._sufficiency(row, scored.observation)
        line["seconds"] = round(time.perf_counter() - started, 3)
        return line

    async def _sufficiency(self, item: EvalItem, observation: str) -> dict[str, Any]:
        try:
            prediction, score = await answer_from_observation(
                self.sufficiency, item, observation, max_tokens=self.config.sufficiency_max_tokens
            )
        except ChatError as exc:
            return {"error": str(exc), "score": 0.0}
        return {"prediction": prediction, "score": score}

    def _fill(self, report: BenchmarkReport, results: list[dict[str, Any]]) -> None:
        report.items = len(results)
        statuses = Counter(str(result.get("status")) for result in results)
        report.statuses = {status: statuses[status] for status in STATUSES if statuses[status]}
        score = self.adapter.aggregate(results)
        report.score, report.breakdown, report.extra = score.score, score.breakdown, score.extra
        answered = [r for r in results if r.get("status") in ("ok", "no_answer")]
        if answered:
            report.format_rate = sum(bool(r.get("format_ok")) for r in answered) / len(answered)
        decided = [r for r in answered if r.get("mismatch") is not None]
        if decided:
            report.mismatch_rate = sum(bool(r["mismatch"]) for r in decided) / len(decided)
        if self.sufficiency is not None:
            judged = [r for r in results if isinstance(r.get("sufficiency"), dict)]
            report.sufficiency_items = len(judged)
            report.sufficiency = sum(float(r["sufficiency"].get("score", 0.0)) for r in judged) / len(results)
        failures = [r for r in results if r.get("status") != "ok"]
        report.failures_total = len(failures)
        report.failures = [
            {"id": str(r["id"]), "status": str(r.get("status")), "error": str(r.get("error") or "")}
            for r in failures[:FAILURES_LISTED]
        ]


def _pending(line: dict[str, Any] | None) -> bool:
    return line is None or line.get("status") in RETRIED


def bad_row_line(row: BadRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": "bad_row",
        "score": 0.0,
        "metric": row.metric,
        "groups": row.groups,
        "error": f"{row.reason}: {row.message}",
    }


def _lost(row: EvalItem | BadRow) -> dict[str, Any]:
    """The result of an item the run stopped before reaching (scored as wrong, listed)."""
    if isinstance(row, BadRow):
        return bad_row_line(row)
    return {
        "id": row.id,
        "status": "request_failed",
        "score": 0.0,
        "metric": row.metric,
        "groups": row.groups,
        "error": "not answered: the run stopped before this item",
    }
