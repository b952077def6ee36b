"""runs/replication/report.md and its plots, from results.json (analysis.analyse)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from videop2r.replication.stats import Z_ALPHA, Z_POWER

NAMES = {"pa_grpo": "PA-GRPO", "no_separation": "PA-GRPO, no separation", "grpo": "GRPO (outcome reward only)",
         "no_perception_reward": "PA-GRPO without perception reward", "grpo_summed": "GRPO on R_P + R_R",
         "sft": "SFT only"}


def _pct(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}"


def plot_curves(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for arm, per_seed in results.get("curves", {}).items():
        steps = sorted({int(s) for curve in per_seed.values() for s in curve})
        if not steps:
            continue
        table = np.array([[per_seed[seed].get(str(s), per_seed[seed].get(s, np.nan)) for s in steps]
                          for seed in per_seed], dtype=float)
        mean, low, high = np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)
        ax.plot(steps, mean, marker="o", label=NAMES.get(arm, arm))
        ax.fill_between(steps, low, high, alpha=0.15)
    ax.set_xlabel("RL step (0 = the SFT model)")
    ax.set_ylabel("held-out test accuracy")
    ax.set_title("held-out accuracy per arm (mean over seeds, band = min–max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "heldout_accuracy.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100, sharey=True)
    for ax, process in zip(axes, ("perception", "reasoning")):
        for arm, per_seed in results.get("collapse_over_steps", {}).items():
            series = [c[process] for c in per_seed.values() if c.get(process)]
            if not series:
                continue
            steps = sorted({int(s) for c in series for s in c})
            table = np.array([[c.get(str(s), c.get(s, np.nan)) for s in steps] for c in series], dtype=float)
            ax.plot(steps, np.nanmean(table, 0), label=NAMES.get(arm, arm))
        ax.set_title(f"collapsed groups: {process}")
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of groups with zero spread")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = out / "collapse.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


def results_table(results: dict[str, Any]) -> list[str]:
    lines = ["| arm | held-out accuracy, mean ± sd | per seed | hard clips | perception sufficiency | "
             "think/answer mismatch |", "|---|---|---|---|---|---|"]
    for arm, row in results["arms"].items():
        per_seed = " / ".join(_pct(v) for v in row["final_acc"])
        hard = " / ".join(_pct(v) for v in row.get("hard_acc", []))
        perception = " / ".join(_pct(v) for v in row["perception_acc"])
        lines.append(f"| {NAMES.get(arm, arm)} (`{arm}`) | {_pct(row['mean'])} ± {100 * row['sd']:.1f} | {per_seed} | "
                     f"{hard} | {perception} | {_pct(results['mismatch'].get(arm))} |")
    return lines


def differences_table(results: dict[str, Any]) -> list[str]:
    lines = ["| a − b | mean (points) | 95% interval | seeds agree | smallest detectable |", "|---|---|---|---|---|"]
    for d in results["differences"]:
        lo, hi = d["ci95"]
        lines.append(f"| {d['a']} − {d['b']} | {_pp(d['mean'])} | [{_pp(lo)}, {_pp(hi)}] | "
                     f"{'yes' if d['seeds_agree'] else 'no'} | {100 * d['detectable']:.1f} |")
    return lines


def gate_lines(results: dict[str, Any]) -> list[str]:
    gate = results["gate"]
    lines = [f"Branch taken: **{gate['branch']}**" + (f" — failed: {', '.join(gate['failed_preconditions'])}"
                                                       if gate["failed_preconditions"] else ""), "",
             "| seed | hard-clip perception | easy-clip perception | P(answer right \\| observation right) | "
             "within-group ρ(R_P, R_R) | groups |", "|---|---|---|---|---|---|"]
    for seed, g in gate["per_seed"].items():
        rho = "–" if g["rho"] is None else f"{g['rho']:.2f}"
        lines.append(f"| {seed} | {_pct(g['hard_perception'])} | {_pct(g['easy_perception'])} | "
                     f"{_pct(g['answer_given_observation'])} | {rho} | {g['groups']} |")
    t = gate["thresholds"]
    lines += ["", f"Thresholds: hard-clip perception in {t['hard_perception']}, P(answer | observation) ≥ "
                  f"{t['min_answer_given_observation']}, ρ ≤ {t['max_rho']}."]
    return lines


def collapse_lines(results: dict[str, Any]) -> list[str]:
    lines = ["| arm | perception groups collapsed | reasoning groups collapsed | answer follows observation |",
             "|---|---|---|---|"]
    for arm, c in results["collapse"].items():
        lines.append(f"| {arm} | {_pct(c['perception'])} | {_pct(c['reasoning'])} | "
                     f"{_pct(results['answer_follows_observation'].get(arm))} |")
    lines += ["", "Every estimator applied to the same logged rewards (fraction of rollouts whose advantage on a "
                  "process's tokens is exactly 0):", "", "| rewards logged by | estimator | perception | reasoning |",
              "|---|---|---|---|"]
    for arm, by_estimator in results["collapse_same_rewards"].items():
        for estimator, c in by_estimator.items():
            lines.append(f"| {arm} | {estimator} | {_pct(c['perception'])} | {_pct(c['reasoning'])} |")
    return lines


def write_report(results: dict[str, Any], out: str | Path, notes: list[str] | None = None) -> Path:
    out = Path(out)
    plots = plot_curves(results, out)
    lines = ["# Does PA-GRPO help? The replication study", "",
             f"Seeds {results['seeds']}; {results['test_items']} held-out test items "
             f"({results['test_hard_items']} hard); wall time {results.get('wall_s', 0):.0f} s.", "",
             "## Gate (the SFT model)", "", *gate_lines(results), "",
             "## Held-out accuracy per arm", "", *results_table(results), "",
             "## Paired differences (bootstrap over seeds and items)", "", *differences_table(results), "",
             "## Collapse per process", "", *collapse_lines(results), "", "## Plots", "",
             *[f"![{p.stem}]({p.name})" for p in plots]]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The README's measured block: ordering, every arm, the intervals, the gate and what a null means."""
    arms = results["arms"]
    ordering = sorted(arms, key=lambda a: arms[a]["mean"], reverse=True)
    diffs = {(d["a"], d["b"]): d for d in results["differences"]}
    resolved = [d for d in results["differences"] if d["ci95"][0] > 0 or d["ci95"][1] < 0]
    detect = sorted(d["detectable"] for d in results["differences"]) or [float("nan")]
    gate = results["gate"]
    lines = [f"Measured ordering (mean held-out accuracy over seeds {results['seeds']}): "
             + " > ".join(f"`{a}` {_pct(arms[a]['mean'])} ± {100 * arms[a]['sd']:.1f}" for a in ordering) + ".", ""]
    lines += [*results_table(results), "", *differences_table(results), ""]
    # design-level detectable difference: two independent binomial arms over items × seeds (conservative:
    # pairing only lowers it); the per-pair figure in the table is 2.8 × the observed bootstrap SE
    p_bar = float(sum(arms[a]["mean"] for a in arms) / len(arms))
    n = max(1, results["test_items"] * len(results["seeds"]))
    design = (Z_ALPHA + Z_POWER) * math.sqrt(max(2 * p_bar * (1 - p_bar) / n, 0.0))
    if not resolved:
        lines.append(f"**A null**: no paired 95% interval excludes 0. The smallest difference this design could "
                     f"detect (80% power, 5% two-sided; {results['test_items']} items × {len(results['seeds'])} "
                     f"seeds at {100 * p_bar:.0f}% accuracy, unpaired) is {100 * design:.1f} points; per pair, "
                     f"2.8 × the bootstrap SE gives {100 * detect[0]:.1f}–{100 * detect[-1]:.1f} (0 where two arms "
                     "answered every item alike).")
    else:
        lines.append("Intervals that exclude 0: " + ", ".join(f"{d['a']} − {d['b']} {_pp(d['mean'])}" for d in resolved)
                     + ".")
    key = diffs.get(("pa_grpo", "grpo"))
    if key:
        lines.append(f"PA-GRPO − GRPO: {_pp(key['mean'])} points, 95% [{_pp(key['ci95'][0])}, {_pp(key['ci95'][1])}]"
                     f" — the paper's Table 2 has PA-GRPO ahead of GRPO; "
                     + ("this run agrees." if key["ci95"][0] > 0 else "this run does not show it."))
    same = results.get("collapse_same_rewards", {}).get("pa_grpo")
    if same:
        lines.append(f"Fig 6c on the same logged rewards (PA-GRPO's rollouts): a zero advantage on the perception "
                     f"tokens for {_pct(same['pa_grpo']['perception'])} of rollouts under PA-GRPO's own R_P, "
                     f"{_pct(same['grpo']['perception'])} under GRPO's single summed reward, "
                     f"{_pct(same['pa_grpo_no_separation']['perception'])} without separation.")
    lines.append(f"Gate branch **{gate['branch']}**"
                 + (f"; failed preconditions: {', '.join(gate['failed_preconditions'])}." if gate["failed_preconditions"]
                    else "; every precondition held."))
    lines += ["", *gate_lines(results)[2:]]
    return lines
