"""The summary of an eval run: method §6 Table 1's row, diagnostics, breakdowns and failures.

``summary.md`` opens with the paper's table — the seven benchmarks in the paper's order, accuracy
in %, one decimal, "–" for a benchmark not run, and Avg over the ones that were — then the
diagnostics per benchmark (items by status, format rate, think/answer mismatch, perception
sufficiency), the breakdowns, and every failed item's id and reason (up to 50 per benchmark;
all of them are in ``<benchmark>.jsonl``). ``summary.json`` holds the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from videop2r.eval.benchmarks import PAPER_ORDER, get_benchmark
from videop2r.eval.blind import ablation_json, video_ablation
from videop2r.eval.runner import STATUSES, BenchmarkReport

DASH = "–"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f}"


def paper_average(reports: list[BenchmarkReport]) -> tuple[float | None, int]:
    """Mean score over the paper's benchmarks that produced a score, and how many there were."""
    scores = [r.score for r in reports if r.paper_column and r.score is not None]
    return (sum(scores) / len(scores) if scores else None), len(scores)


def table1(label: str, reports: list[BenchmarkReport]) -> str:
    """method §6 Table 1's header and this run's row (markdown)."""
    by_name = {report.name: report for report in reports}
    titles = [get_benchmark(name).title for name in PAPER_ORDER]
    cells = [pct(by_name[name].score) if name in by_name else DASH for name in PAPER_ORDER]
    average, count = paper_average(reports)
    lines = [
        "| Model | " + " | ".join(titles) + " | Avg |",
        "|---|" + "---|" * (len(titles) + 1),
        f"| {label} | " + " | ".join(cells) + f" | {pct(average)} |",
    ]
    if 0 < count < len(PAPER_ORDER):
        lines.append(f"\nAvg is over the {count} of {len(PAPER_ORDER)} benchmarks that were run.")
    return "\n".join(lines)


def _other_scores(reports: list[BenchmarkReport]) -> str:
    others = [r for r in reports if not r.paper_column]
    if not others:
        return ""
    rows = "\n".join(f"| {r.title} | {pct(r.score)} |" for r in others)
    return f"\n\nOther sets:\n\n| Set | Score |\n|---|---|\n{rows}"


def diagnostics(reports: list[BenchmarkReport]) -> str:
    columns = [
        "Benchmark",
        "Items",
        *STATUSES,
        "Format",
        "Think/answer mismatch",
        "Perception sufficiency",
        "Resumed",
        "Time (s)",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in reports:
        if r.error:
            lines.append(f"| {r.title} | error: {r.error} |" + " |" * (len(columns) - 2))
            continue
        statuses = [str(r.statuses.get(status, 0)) for status in STATUSES]
        sufficiency = pct(r.sufficiency) + (
            f" ({r.sufficiency_items} obs.)" if r.sufficiency is not None else ""
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r.title,
                    str(r.items),
                    *statuses,
                    pct(r.format_rate),
                    pct(r.mismatch_rate),
                    sufficiency,
                    str(r.resumed),
                    f"{r.seconds:.1f}",
                ]
            )
            + " |"
        )
    stopped = [f"- {r.title} stopped early: {r.stopped}" for r in reports if r.stopped]
    return "\n".join(lines + ([""] + stopped if stopped else []))


def breakdowns(reports: list[BenchmarkReport]) -> str:
    parts = []
    for r in reports:
        if r.error or r.score is None:
            continue
        parts.append(f"### {r.title}: {pct(r.score)}")
        if r.extra:
            parts.append(", ".join(f"{key} {pct(value)}" for key, value in r.extra.items()))
        for key, values in r.breakdown.items():
            parts.append(f"\n| {key} | score |\n|---|---|")
            parts.extend(f"| {value} | {pct(score)} |" for value, score in values.items())
        parts.append("")
    return "\n".join(parts)


def failures(reports: list[BenchmarkReport]) -> str:
    parts = []
    for r in reports:
        if not r.failures_total:
            continue
        shown = len(r.failures)
        more = f", first {shown} listed" if shown < r.failures_total else ""
        parts.append(f"### {r.title}: {r.failures_total} items scored as wrong{more}")
        parts.extend(
            f"- `{f['id']}` {f['status']}" + (f": {f['error'][:200]}" if f["error"] else "")
            for f in r.failures
        )
        parts.append("")
    return "\n".join(parts) or "None."


def render(label: str, reports: list[BenchmarkReport], settings: dict[str, object],
           blind: list[BenchmarkReport] | None = None) -> str:
    setting_line = ", ".join(f"{key} {value}" for key, value in settings.items())
    ablation = [] if blind is None else ["## Without the video (--blind)\n\n" + video_ablation(reports, blind)]
    return (
        "\n\n".join(
            [
                f"# Evaluation: {label}",
                f"Settings: {setting_line}.",
                table1(label, reports) + _other_scores(reports),
                *ablation,
                "## Diagnostics\n\n" + diagnostics(reports),
                "## Breakdown\n\n" + breakdowns(reports),
                "## Failures\n\n" + failures(reports),
            ]
        )
        + "\n"
    )


def write_summary(
    out_dir: Path, label: str, reports: list[BenchmarkReport], settings: dict[str, object],
    blind: list[BenchmarkReport] | None = None,
) -> Path:
    """Write ``summary.md`` and ``summary.json`` into `out_dir` (with `blind`: the --blind pass's
    accuracies next to the normal ones); returns the markdown path."""
    out_dir = Path(out_dir)
    average, count = paper_average(reports)
    data = {
        "model": label,
        "settings": settings,
        "average": average,
        "average_over": count,
        "benchmarks": {report.name: asdict(report) for report in reports},
    }
    if blind is not None:
        data["blind"] = ablation_json(reports, blind)
    (out_dir / "summary.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    path = out_dir / "summary.md"
    path.write_text(render(label, reports, settings, blind))
    return path
