"""The runner over a fixture release with a scripted policy: statuses, summary, resume, a dead endpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from videop2r.config import EvalConfig
from videop2r.eval import BenchmarkRunner, BenchmarkSource, Ledger, Policy, RequestFailed, get_benchmark
from videop2r.eval.summary import table1, write_summary

CONFIG = EvalConfig(frames=4, min_pixels=3136, max_pixels=3136, concurrency=3)


def template(answer: str | None) -> str:
    body = "<observation>Based on the question, I need to notice the chairs.</observation><think>I count.</think>"
    return body + (f"<answer>{answer}</answer>" if answer is not None else "")


class ScriptedPolicy(Policy):
    """Answers by question text; `fail` questions raise RequestFailed (an unreachable server)."""

    def __init__(self, answers: dict[str, str | None], fail: set[str] = frozenset()) -> None:
        self.answers = answers
        self.fail = set(fail)
        self.calls: list[str] = []

    async def respond(self, fields, media) -> str:
        assert media is not None and media.frames.shape == (4, 56, 56, 3)
        question = fields["problem"]
        self.calls.append(question)
        await asyncio.sleep(0)
        if any(question.startswith(prefix) for prefix in self.fail):
            raise RequestFailed("connection refused")
        for prefix, answer in self.answers.items():
            if question.startswith(prefix):
                return template(answer)
        return template("D")


VSI_ANSWERS = {
    "How many chair": "4 chairs",
    "What is the size of this room": None,
    "If I am standing": "A",
    "What is the length": "140",
}


def run(release, out: Path, policy: Policy, name: str = "vsibench", config: EvalConfig = CONFIG):
    runner = BenchmarkRunner(
        get_benchmark(name), BenchmarkSource.open(str(release / name)), policy, out, config, progress=False
    )
    return asyncio.run(runner.run())


def lines(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_statuses_scores_and_summary(release, tmp_path):
    policy = ScriptedPolicy(VSI_ANSWERS)
    report = run(release, tmp_path, policy)
    results = lines(tmp_path / "vsibench.jsonl")
    assert {k: v["status"] for k, v in results.items()} == {
        "1": "ok",
        "2": "no_answer",
        "3": "ok",
        "4": "ok",
        "5": "ok",
        "6": "missing_media",
        "7": "bad_row",
        "row:test.jsonl line 8": "bad_row",
        "9": "ok",
    }
    assert results["1"]["score"] == 1.0  # "4 chairs": first word 4, exact
    assert results["9"]["score"] == pytest.approx(0.9)  # 140 vs 150: e = 0.067, θ <= 0.933: nine thresholds
    assert results["6"]["error"].startswith("missing:")
    # MC (accuracy): items 3 (A right), 4 (D right), 5 (D wrong), bad rows 7 and 8 -> 2 / 5
    # numerical (MRA): items 1 (1.0), 2 (no answer, 0), 6 (missing, 0), 9 (0.9) -> 1.9 / 4
    assert report.score == pytest.approx((2 / 5 + 1.9 / 4) / 2)
    assert report.items == 9 and report.statuses == {
        "ok": 5,
        "no_answer": 1,
        "bad_row": 2,
        "missing_media": 1,
    }
    assert report.format_rate == pytest.approx(5 / 6)  # the no-answer response breaks the template
    assert report.failures_total == 4
    assert len(policy.calls) == 6  # no request for bad rows and missing media
    write_summary(tmp_path, "scripted", [report], {"frames": 4})
    summary = (tmp_path / "summary.md").read_text()
    assert (
        "| Model | VSI-Bench | VideoMMMU | MMVU (MC) | VCR-Bench (MC) | MVBench | TempCompass | VideoMME (no subs) | Avg |"
        in summary
    )
    assert (
        f"| scripted | {100 * report.score:.1f} | – | – | – | – | – | – | {100 * report.score:.1f} |"
        in summary
    )
    assert "`6` missing_media" in summary and "`7` bad_row: unknown_question_type" in summary
    assert "`2` no_answer" in summary
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["benchmarks"]["vsibench"]["statuses"]["bad_row"] == 2


def test_rerun_resumes_and_retries_only_unreachable_items(release, tmp_path):
    first = ScriptedPolicy(VSI_ANSWERS, fail={"If I am standing"})
    report = run(release, tmp_path, first)
    assert report.statuses["request_failed"] == 1 and report.score is not None
    second = ScriptedPolicy(VSI_ANSWERS)
    report = run(release, tmp_path, second)
    assert second.calls == [
        "If I am standing by the sofa and facing the tv, is the lamp to my left or right?"
    ]
    assert report.resumed == 8 and "request_failed" not in report.statuses
    assert len(Ledger(tmp_path / "vsibench.jsonl").entries) == 9


def test_a_dead_endpoint_stops_the_run_and_keeps_what_is_done(release, tmp_path):
    config = CONFIG.model_copy(update={"max_consecutive_failures": 2, "concurrency": 1})
    policy = ScriptedPolicy({}, fail={""})  # every request fails
    report = run(release, tmp_path, policy, "tempcompass", config)
    assert report.stopped and "2 requests in a row failed" in report.stopped
    assert len(policy.calls) == 2
    results = lines(tmp_path / "tempcompass.jsonl")
    assert [r["status"] for r in results.values()].count(
        "request_failed"
    ) == 1  # the second raised EndpointDown
    assert report.statuses["request_failed"] == 4 and report.statuses["bad_row"] == 1  # unreached items count


def test_unreadable_annotations_are_a_reported_error_not_a_crash(tmp_path):
    (tmp_path / "data").mkdir()
    runner = BenchmarkRunner(
        get_benchmark("mmvu"),
        BenchmarkSource.open(str(tmp_path / "data")),
        ScriptedPolicy({}),
        tmp_path / "out",
        CONFIG,
        progress=False,
    )
    report = asyncio.run(runner.run())
    assert report.error and "no annotation file" in report.error and report.score is None
    assert "| Model |" in table1("m", [report])


def test_ledger_drops_a_torn_last_line_and_keeps_the_latest_entry(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text(
        '{"id": "a", "status": "request_failed"}\n{"id": "b", "status": "ok"}\n{"id": "a", "status": "ok"}\n'
        '{"id": "c", "sta'
    )
    with Ledger(path) as ledger:
        assert set(ledger.entries) == {"a", "b"} and ledger.get("a")["status"] == "ok"
        ledger.append({"id": "c", "status": "ok"})
    assert path.read_text().endswith('{"id": "a", "status": "ok"}\n{"id": "c", "status": "ok"}\n')
