"""`runs/<name>/report.md`: stage × held-out scores, and PNG plots of per-process rewards over steps.

Inputs are the run directory's `evals.jsonl` (one line per held-out evaluation, written by
`videop2r.train.evaluate`) and `metrics.jsonl` (one line per training step). The report is
rebuilt from them after every stage, so it always shows what the run has done so far.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from videop2r.metrics import PROCESSES
from videop2r.train.metrics_log import read_metrics

EVALS_FILE = "evals.jsonl"
STAGE_ORDER = {"initial": 0, "sft": 1, "before_pa_grpo": 2, "pa_grpo": 3}


def append_eval(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Add one evaluation result to the run's evals.jsonl."""
    path = Path(run_dir) / EVALS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(json.dumps(row, sort_keys=True) + "\n")


def read_evals(run_dir: str | Path) -> list[dict[str, Any]]:
    return read_metrics(Path(run_dir) / EVALS_FILE)


def has_final_eval(run_dir: str | Path, model: str) -> bool:
    """Whether a stage already ended with an evaluation of the weights at `model` (e.g. SFT's output)."""
    return any(row.get("final") and row.get("model") == model for row in read_evals(run_dir))


def _stage_rows(evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage boundary: the last evaluation tagged as the end of each stage.

    A rerun of a stage (e.g. after a resume) replaces its earlier row.
    """
    final: dict[str, dict[str, Any]] = {}
    for row in evals:
        if row.get("final"):
            final[row["stage"]] = row
    return sorted(final.values(), key=lambda r: STAGE_ORDER.get(r["stage"], 99))


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100.0 * float(value):.1f}%"


def stage_start(evals: list[dict[str, Any]], stage: str = "pa_grpo") -> dict[str, Any] | None:
    """The held-out evaluation of the weights `stage` starts from: its own step-0 row, or else (the
    before-eval is skipped when SFT already evaluated its output) the last final SFT evaluation."""
    before = [r for r in evals if r.get("stage") == f"before_{stage}"]
    if before:
        return before[-1]
    earlier = [r for r in evals if r.get("final") and STAGE_ORDER.get(r.get("stage", ""), 99) < STAGE_ORDER.get(stage, 0)]
    return earlier[-1] if earlier else None


def plot_rewards(metrics: list[dict[str, Any]], out_dir: Path, stage: str = "pa_grpo",
                 start: dict[str, Any] | None = None) -> list[Path]:
    """One PNG per process: its reward components over training steps; the held-out curve begins
    at step 0 with `start` (the evaluation of the starting weights), so the stage's jump shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in metrics if m.get("stage") == stage]
    written = []
    for process in PROCESSES:
        series = {
            comp: [(r["step"], r[f"reward/{process}/{comp}"]) for r in rows if f"reward/{process}/{comp}" in r]
            for comp in ("accuracy", "format", "length", "total")
        }
        if not any(series.values()):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for comp, points in series.items():
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=comp, marker="." if len(points) < 40 else None)
        ax.set_title(f"{process} rewards ({stage})")
        ax.set_xlabel("step")
        ax.set_ylabel("mean reward")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"rewards_{process}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    evals = [m for m in metrics if m.get("stage") == f"{stage}_eval" and "eval/reasoning_accuracy" in m]
    if evals:
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for key, label in (("eval/reasoning_accuracy", "reasoning accuracy"),
                           ("eval/perception_sufficiency", "perception sufficiency")):
            points = [(r["step"], r[key]) for r in evals if key in r]
            if start is not None and not any(p[0] == 0 for p in points) and key.split("/")[1] in start:
                points.insert(0, (0, start[key.split("/")[1]]))
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, marker="o")
        ax.set_title(f"held-out evaluation during {stage}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / "eval_over_steps.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def eval_table(evals: list[dict[str, Any]], stages: tuple[str, ...] | None = None) -> list[str]:
    """The Markdown table of the held-out evaluation at the end of each stage (of `stages`, if given)."""
    lines = ["| stage | step | samples | reasoning accuracy | perception sufficiency | format rate |",
             "|---|---|---|---|---|---|"]
    for row in _stage_rows(evals):
        if stages is None or row["stage"] in stages:
            lines.append(
                f"| {row['stage']} | {row.get('step', 0)} | {row.get('n', 0)} | {_pct(row.get('reasoning_accuracy'))} | "
                f"{_pct(row.get('perception_sufficiency'))} | {_pct(row.get('format_rate'))} |"
            )
    return lines


def write_report(run_dir: str | Path, title: str = "", notes: list[str] | None = None) -> Path:
    """Rebuild report.md (and the plots) from the run directory; returns its path."""
    run_dir = Path(run_dir)
    evals = read_evals(run_dir)
    metrics = read_metrics(run_dir / "metrics.jsonl")
    plots = plot_rewards(metrics, run_dir, start=stage_start(evals))
    lines = [f"# {title or run_dir.name}: VideoP2R run report", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", "",
             "Held-out evaluation (greedy decoding) at the end of each stage:", "", *eval_table(evals)]
    per_type = [r for r in _stage_rows(evals) if r.get("by_question")]
    if per_type:
        kinds = sorted({k for r in per_type for k in r["by_question"]})
        lines += ["", "Reasoning accuracy by question kind:", "",
                  "| stage | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for row in per_type:
            lines.append(f"| {row['stage']} | " + " | ".join(_pct(row["by_question"].get(k)) for k in kinds) + " |")
    timings = [r for r in _stage_rows(evals) if r.get("stage_seconds")]
    if timings:
        lines += ["", "Wall time per stage: " + ", ".join(f"{r['stage']} {r['stage_seconds']:.0f}s" for r in timings)]
    if plots:
        lines += ["", "## Per-process rewards over PA-GRPO steps", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
