"""results.json from the study's dumps: arms, paired differences, the gate, collapse, mismatch.

Inputs per seed s (see study.Layout): `sft/eval_items.jsonl` (the SFT model on validation, final
row = the kept checkpoint), `<arm>/eval_items.jsonl` (held-out test: `before_pa_grpo` = the `sft`
arm, `during_pa_grpo` rows per eval step, `pa_grpo` = final) and `<arm>/rollouts.jsonl` (every
rollout of every step). Records (difficulty, options) come from `data/<split>.jsonl`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videop2r.algorithms.advantages import group_normalise
from videop2r.replication.spec import PAPER_ORDER, StudySpec
from videop2r.replication.stats import mean_sd, paired_difference, pooled_within_group_corr
from videop2r.replication.study import Layout
from videop2r.rewards.judges.evidence import COLOURS, tokens
from videop2r.rewards.segments import extract_answer, segment_response

ESTIMATORS = ("pa_grpo", "pa_grpo_no_separation", "grpo")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def records_by_id(layout: Layout, split: str) -> dict[str, dict[str, Any]]:
    return {str(r["problem_id"]): r for r in read_jsonl(layout.data / f"{split}.jsonl")}


def observed_colour(text: str) -> str | None:
    """The one colour an observation names (None when it names none or several)."""
    span = segment_response(text).perception
    observation = text[span.start:span.end] if span is not None else ""
    words = tokens(observation)
    named = {c for c, synonyms in COLOURS.items() if any(s in words for s in synonyms)}
    return named.pop() if len(named) == 1 else None


def answer_follows(text: str, record: dict[str, Any]) -> bool | None:
    """Whether the answer letter is the option of the colour the observation names (None: undecidable)."""
    colour, answer = observed_colour(text), extract_answer(text)
    if colour is None or answer is None:
        return None
    match = re.match(r"\s*\(?([A-D])\b", answer)
    if not match:
        return False
    options = {o.split(".", 1)[0].strip(): o.split(".", 1)[1].strip() for o in record.get("options", [])}
    return options.get(match.group(1)) == colour


def final_items(rows: list[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    """The last evaluation with `tag` that is final, item id → row."""
    final = [r for r in rows if r.get("tag") == tag and r.get("final")]
    if not final:
        return {}
    step = final[-1]["step"]
    return {r["id"]: r for r in final if r["step"] == step}


def sft_items(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per-item rows of the SFT checkpoint that was kept (keep_best: an evaluation during SFT)."""
    chosen = [r for r in read_jsonl(run_dir / "evals.jsonl") if r.get("stage") == "sft" and r.get("final")]
    if not chosen:
        return {}
    step = chosen[-1].get("step")
    rows = [r for r in read_jsonl(run_dir / "eval_items.jsonl")
            if r.get("step") == step and r.get("tag") in ("sft", "during_sft")]
    return {r["id"]: r for r in rows}


def _acc(items: dict[str, dict[str, Any]], ids: list[str]) -> np.ndarray:
    return np.array([float(items[i]["accuracy"]) if i in items else 0.0 for i in ids])


def gate(spec: StudySpec, layout: Layout, seed: int) -> dict[str, Any]:
    """The SFT model's preconditions: hard-clip perception (validation), P(answer right | observation
    right) (validation) and the within-group ρ of R_P and R_R over its step-1 groups on the RL pool."""
    val = records_by_id(layout, "val")
    items = sft_items(layout.run_dir(seed, "sft"))
    hard = [i for i in items.values() if val.get(i["id"], {}).get("difficulty") == "hard"]
    easy = [i for i in items.values() if val.get(i["id"], {}).get("difficulty") == "easy"]
    seen = [i for i in items.values() if i.get("sufficient")]
    rollouts = [r for r in read_jsonl(layout.run_dir(seed, spec.rl_arms[0]) / "rollouts.jsonl") if r["step"] == 1]
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rollouts:
        by_uid[row["uid"]].append(row)
    # ρ needs the perception reward that includes the judge: the first arm must use it
    rho = pooled_within_group_corr([([r["r_p"] for r in g], [r["r_r"] for r in g]) for g in by_uid.values()])
    out = {
        "hard_perception": float(np.mean([i.get("sufficient", False) for i in hard])) if hard else None,
        "easy_perception": float(np.mean([i.get("sufficient", False) for i in easy])) if easy else None,
        "answer_given_observation": float(np.mean([i["accuracy"] for i in seen])) if seen else None,
        "val_accuracy": float(np.mean([i["accuracy"] for i in items.values()])) if items else None,
        "rho": rho, "groups": len(by_uid),
    }
    g = spec.gate
    failed = []
    if out["hard_perception"] is None or not g.hard_perception[0] <= out["hard_perception"] <= g.hard_perception[1]:
        failed.append("hard_perception")  # SFT perception on hard clips is not partial
    if out["answer_given_observation"] is None or out["answer_given_observation"] < g.min_answer_given_observation:
        failed.append("answer_given_observation")  # a right observation does not give a right answer
    if rho is None or rho > g.max_rho:
        failed.append("rho")  # R_P and R_R carry (nearly) the same signal inside a group
    out["failed"] = failed
    return out


def collapse_fractions(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per process, the fraction of groups with zero spread, and per estimator on the same rewards the
    fraction of rollouts whose advantage is exactly 0 on that process's tokens."""
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_uid[row["uid"]].append(row)
    uids = [u for u, group in by_uid.items() for _ in group]
    p = torch.tensor([r["r_p"] for g in by_uid.values() for r in g], dtype=torch.float64)
    r = torch.tensor([r["r_r"] for g in by_uid.values() for r in g], dtype=torch.float64)
    if not uids:
        return {}
    a_p, a_r, a_sum = group_normalise(p, uids), group_normalise(r, uids), group_normalise(p + r, uids)
    zero = lambda t: float((t.advantage == 0).double().mean())  # noqa: E731
    both = float(((a_p.advantage + a_r.advantage) == 0).double().mean())
    return {
        "groups": {"perception": a_p.collapse_fraction, "reasoning": a_r.collapse_fraction,
                   "summed": a_sum.collapse_fraction},
        "pa_grpo": {"perception": zero(a_p), "reasoning": zero(a_r)},
        "pa_grpo_no_separation": {"perception": both, "reasoning": both},
        "grpo": {"perception": zero(a_sum), "reasoning": zero(a_sum)},
    }


def curves(spec: StudySpec, layout: Layout) -> dict[str, dict[int, dict[int, float]]]:
    """arm → seed → step → held-out accuracy (step 0 = the SFT model)."""
    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for seed in spec.seeds:
        for arm in spec.rl_arms:
            rows = read_jsonl(layout.run_dir(seed, arm) / "eval_items.jsonl")
            steps: dict[int, list[float]] = defaultdict(list)
            for row in rows:
                steps[0 if row["tag"] == "before_pa_grpo" else int(row["step"])].append(float(row["accuracy"]))
            for step, values in steps.items():
                out[arm][seed][step] = float(np.mean(values))
    first = spec.rl_arms[0]
    for arm in spec.rl_arms:
        for seed in spec.seeds:
            if 0 in out[first][seed]:
                out[arm][seed].setdefault(0, out[first][seed][0])
    return {a: {s: dict(sorted(v.items())) for s, v in d.items()} for a, d in out.items()}


def collapse_over_steps(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_step[int(row["step"])].append(row)
    out: dict[str, dict[int, float]] = {"perception": {}, "reasoning": {}}
    for step, step_rows in sorted(by_step.items()):
        fractions = collapse_fractions(step_rows)["groups"]
        out["perception"][step], out["reasoning"][step] = fractions["perception"], fractions["reasoning"]
    return out


def complete_seeds(spec: StudySpec, layout: Layout) -> list[int]:
    """Seeds whose every RL arm reached its final evaluation (a study cut short reports only these)."""
    return [seed for seed in spec.seeds
            if all(final_items(read_jsonl(layout.run_dir(seed, arm) / "eval_items.jsonl"), "pa_grpo")
                   for arm in spec.rl_arms)]


def evaluated_ids(spec: StudySpec, layout: Layout, ids: list[str]) -> list[str]:
    """Test items every arm's final evaluation scored (all of them unless trainer.eval_max_samples cut it)."""
    for seed in spec.seeds:
        for arm in spec.rl_arms:
            rows = read_jsonl(layout.run_dir(seed, arm) / "eval_items.jsonl")
            for tag in ("pa_grpo",) + (("before_pa_grpo",) if arm == spec.rl_arms[0] else ()):
                seen = set(final_items(rows, tag))
                ids = [i for i in ids if i in seen]
    return ids


def analyse(spec: StudySpec, out: str | Path, timing: dict[str, Any] | None = None) -> dict[str, Any]:
    layout = Layout(Path(out))
    planned = list(spec.seeds)
    spec = spec.model_copy(update={"seeds": complete_seeds(spec, layout)})
    if not spec.seeds:
        raise ValueError(f"no seed of {planned} has finished every arm under {out}")
    test = records_by_id(layout, "test")
    ids = evaluated_ids(spec, layout, sorted(test))
    hard_ids = [i for i in ids if test[i].get("difficulty") == "hard"]
    first = spec.rl_arms[0]
    scores: dict[str, list[np.ndarray]] = defaultdict(list)
    arms: dict[str, dict[str, Any]] = {}
    collapse: dict[str, dict[str, float]] = {}
    same_rewards: dict[str, dict[str, dict[str, float]]] = {}
    mismatch: dict[str, float] = {}
    follows: dict[str, float] = {}
    rl = records_by_id(layout, "rl")
    for arm in spec.arms:
        final_acc, perception, hard_acc, mism, logged = [], [], [], [], []
        for seed in spec.seeds:
            source, tag = (first, "before_pa_grpo") if arm == "sft" else (arm, "pa_grpo")
            items = final_items(read_jsonl(layout.run_dir(seed, source) / "eval_items.jsonl"), tag)
            acc = _acc(items, ids)
            scores[arm].append(acc)
            final_acc.append(float(acc.mean()))
            perception.append(float(np.mean([bool(items.get(i, {}).get("sufficient")) for i in ids])))
            hard_acc.append(float(_acc(items, hard_ids).mean()) if hard_ids else float("nan"))
            decided = [bool(items[i]["mismatch"]) for i in ids if i in items and items[i].get("mismatch") is not None]
            mism.append(float(np.mean(decided)) if decided else 0.0)
            if arm != "sft":
                rows = read_jsonl(layout.run_dir(seed, arm) / "rollouts.jsonl")
                logged += rows
        mean, sd = mean_sd(final_acc)
        arms[arm] = {"final_acc": final_acc, "mean": mean, "sd": sd, "perception_acc": perception,
                     "hard_acc": hard_acc, "n_items": len(ids)}
        mismatch[arm] = float(np.mean(mism))
        if logged:
            fractions = collapse_fractions(logged)
            collapse[arm] = {"perception": fractions["groups"]["perception"],
                             "reasoning": fractions["groups"]["reasoning"]}
            same_rewards[arm] = {e: fractions[e] for e in ESTIMATORS}
            decided = [answer_follows(r["text"], rl.get(r["id"], {})) for r in logged]
            decided = [d for d in decided if d is not None]
            follows[arm] = float(np.mean(decided)) if decided else float("nan")
    order = [a for a in PAPER_ORDER if a in spec.arms] + [a for a in spec.arms if a not in PAPER_ORDER]
    differences = [paired_difference(a, b, np.stack(scores[a]), np.stack(scores[b]), spec.bootstrap).as_dict()
                   for a, b in combinations(order, 2)]
    gates = {str(seed): gate(spec, layout, seed) for seed in spec.seeds}
    failed = sorted({f for g in gates.values() for f in g["failed"]})
    return {
        "seeds": spec.seeds, "seeds_planned": planned, "arms": arms, "differences": differences,
        "gate": {"per_seed": gates, "thresholds": spec.gate.model_dump(),
                 "branch": "compare" if not any(g["failed"] for g in gates.values()) else "null-expected",
                 "failed_preconditions": failed},
        "collapse": collapse, "collapse_same_rewards": same_rewards, "mismatch": mismatch,
        "answer_follows_observation": follows,
        "curves": curves(spec, layout),
        "collapse_over_steps": {arm: {str(s): c for s, c in zip(spec.seeds, [collapse_over_steps(read_jsonl(
            layout.run_dir(seed, arm) / "rollouts.jsonl")) for seed in spec.seeds])} for arm in spec.rl_arms},
        "test_items": len(ids), "test_hard_items": len(hard_ids),
        **(timing or {}),
    }
