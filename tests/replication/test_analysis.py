"""results.json from hand-made dumps: every key the issue names, and numbers that follow from the dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videop2r.replication.analysis import analyse, answer_follows, collapse_fractions, observed_colour
from videop2r.replication.report import write_report
from videop2r.replication.spec import StudySpec

OPTIONS = ["A. red", "B. green", "C. blue", "D. yellow"]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _text(colour: str, letter: str) -> str:
    return f"<observation>I see a {colour} circle moving.</observation><think>It is {colour}, option {letter}.</think>" \
           f"<answer>{letter}</answer>"


def _fake_study(out: Path, seeds: list[int]) -> None:
    ids = [f"hard-test-{i:05d}" for i in range(10)]
    _write(out / "data" / "test.jsonl", [{"problem_id": i, "difficulty": "hard" if n < 5 else "easy",
                                          "options": OPTIONS} for n, i in enumerate(ids)])
    val = [f"hard-val-{i:05d}" for i in range(4)]
    _write(out / "data" / "val.jsonl", [{"problem_id": i, "difficulty": "hard" if n < 2 else "easy"}
                                        for n, i in enumerate(val)])
    _write(out / "data" / "rl.jsonl", [{"problem_id": "hard-rl-00000", "options": OPTIONS}])
    for seed in seeds:
        sd = out / f"seed-{seed}"
        # SFT on validation: hard perception 1/2, easy 2/2; answers right on 2 of 3 right observations
        _write(sd / "sft" / "evals.jsonl", [{"stage": "sft", "final": True, "step": 10}])
        _write(sd / "sft" / "eval_items.jsonl", [
            {"tag": "during_sft", "step": 5, "final": False, "id": val[0], "accuracy": 0.0, "sufficient": False},
            {"tag": "during_sft", "step": 10, "final": True, "id": val[0], "accuracy": 1.0, "sufficient": True},
            {"tag": "during_sft", "step": 10, "final": True, "id": val[1], "accuracy": 0.0, "sufficient": False},
            {"tag": "during_sft", "step": 10, "final": True, "id": val[2], "accuracy": 1.0, "sufficient": True},
            {"tag": "during_sft", "step": 10, "final": True, "id": val[3], "accuracy": 0.0, "sufficient": True}])
        for arm, right in (("pa_grpo", 8), ("grpo", 6)):
            rows = [{"tag": "before_pa_grpo", "step": 0, "final": True, "id": i, "accuracy": float(n < 5),
                     "sufficient": n < 5, "mismatch": False} for n, i in enumerate(ids)] if arm == "pa_grpo" else []
            rows += [{"tag": "during_pa_grpo", "step": 1, "final": False, "id": i, "accuracy": float(n < 7)}
                     for n, i in enumerate(ids)]
            rows += [{"tag": "pa_grpo", "step": 2, "final": True, "id": i, "accuracy": float(n < right),
                      "sufficient": n < right, "mismatch": n == 9} for n, i in enumerate(ids)]
            _write(sd / arm / "eval_items.jsonl", rows)
            rollouts = []
            for step in (1, 2):
                # group 0: R_P and R_R vary together; group 1: R_P varies, R_R collapsed
                for k in range(4):
                    rollouts.append({"step": step, "uid": f"{step}-0", "id": "hard-rl-00000", "r_p": float(k % 2),
                                     "r_r": float(k % 2), "text": _text("red", "A" if k % 2 else "B")})
                    rollouts.append({"step": step, "uid": f"{step}-1", "id": "hard-rl-00000", "r_p": float(k < 2),
                                     "r_r": 1.0, "text": _text("green", "B")})
            _write(sd / arm / "rollouts.jsonl", rollouts)


def test_results_have_every_part_the_issue_names(tmp_path) -> None:
    spec = StudySpec(seeds=[0, 1], arms=["pa_grpo", "grpo", "sft"], bootstrap=200)
    _fake_study(tmp_path, spec.seeds)
    results = analyse(spec, tmp_path, {"wall_s": 12.0})
    assert results["arms"]["pa_grpo"]["final_acc"] == [0.8, 0.8] and results["arms"]["pa_grpo"]["sd"] == 0
    assert results["arms"]["grpo"]["mean"] == pytest.approx(0.6)
    assert results["arms"]["sft"]["final_acc"] == [0.5, 0.5]
    assert results["arms"]["pa_grpo"]["hard_acc"] == [1.0, 1.0]
    assert results["arms"]["pa_grpo"]["perception_acc"] == [0.8, 0.8]
    pairs = {(d["a"], d["b"]): d for d in results["differences"]}
    assert set(pairs) == {("pa_grpo", "grpo"), ("pa_grpo", "sft"), ("grpo", "sft")}
    assert pairs[("pa_grpo", "grpo")]["mean"] == pytest.approx(0.2) and pairs[("pa_grpo", "grpo")]["seeds_agree"]
    lo, hi = pairs[("pa_grpo", "grpo")]["ci95"]
    assert 0 <= lo <= 0.2 <= hi
    gate = results["gate"]["per_seed"]["0"]
    assert gate["hard_perception"] == 0.5 and gate["easy_perception"] == 1.0
    assert gate["answer_given_observation"] == pytest.approx(2 / 3)
    assert gate["rho"] == pytest.approx(collapse_rho := gate["rho"]) and 0 < collapse_rho < 1
    assert results["gate"]["branch"] in ("compare", "null-expected")
    assert results["collapse"]["pa_grpo"] == {"perception": 0.0, "reasoning": 0.5}
    same = results["collapse_same_rewards"]["pa_grpo"]
    assert same["pa_grpo"]["reasoning"] == 0.5 and same["grpo"]["perception"] == 0.0
    assert results["mismatch"]["pa_grpo"] == pytest.approx(0.1)
    assert results["answer_follows_observation"]["pa_grpo"] == pytest.approx(0.75)
    assert results["curves"]["grpo"][0] == {0: 0.5, 1: 0.7, 2: 0.6}  # step 0 taken from the first arm
    assert results["wall_s"] == 12.0
    json.dumps(results)
    report = write_report(results, tmp_path).read_text()
    assert "Branch taken" in report and "pa_grpo − grpo" in report
    assert (tmp_path / "heldout_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "collapse.png").exists()


def test_collapse_applies_every_estimator_to_the_same_rewards() -> None:
    rows = [{"uid": "g", "r_p": p, "r_r": 1.0} for p in (0.0, 1.0)] + [{"uid": "h", "r_p": 1.0, "r_r": 1.0}] * 2
    c = collapse_fractions(rows)
    assert c["groups"] == {"perception": 0.5, "reasoning": 1.0, "summed": 0.5}
    assert c["pa_grpo"] == {"perception": 0.5, "reasoning": 1.0}
    assert c["grpo"]["perception"] == 0.5  # the summed reward keeps group g's perception spread


def test_answer_follows_observation() -> None:
    record = {"options": ["A. yellow", "B. blue", "C. green", "D. red"]}
    assert observed_colour(_text("red", "D")) == "red"
    assert answer_follows(_text("red", "D"), record) is True
    assert answer_follows(_text("red", "A"), record) is False
    assert answer_follows("<observation>a red or blue shape</observation><answer>D</answer>", record) is None


def test_the_readme_block_states_the_ordering_and_the_null(tmp_path) -> None:
    from videop2r.replication.report import summary_lines

    spec = StudySpec(seeds=[0, 1], arms=["pa_grpo", "grpo", "sft"], bootstrap=200)
    _fake_study(tmp_path, spec.seeds)
    text = "\n".join(summary_lines(analyse(spec, tmp_path)))
    assert "`pa_grpo` 80.0% ± 0.0 > `grpo` 60.0% ± 0.0 > `sft` 50.0% ± 0.0" in text
    assert "Gate branch" in text and "PA-GRPO − GRPO: +20.0" in text and "Fig 6c" in text


def test_jobs_start_by_priority_and_finished_ones_are_skipped(tmp_path) -> None:
    import sys

    from videop2r.replication.study import Job, run_jobs

    order = tmp_path / "order.txt"

    def job(name: str, priority: int = 1, needs: list[str] | None = None) -> Job:
        argv = [sys.executable, "-c", f"open({str(order)!r}, 'a').write('{name}\\n')"]
        return Job(name, argv, tmp_path / f"{name}.log", needs=needs or [], done_marker=tmp_path / f"{name}.done",
                   priority=priority)

    (tmp_path / "old.done").write_text("1\n")
    stale = tmp_path / "arm-b-dir"
    stale.mkdir()
    (stale / "rollouts.jsonl").write_text("{}\n")  # left by an interrupted try
    b = job("arm-b")
    b.fresh_dir = stale
    done = run_jobs([job("old"), job("arm-a", needs=["old"]), b, job("sft", priority=0)], parallel=1, poll_s=0.05)
    assert not stale.exists()
    assert set(done) == {"old", "arm-a", "arm-b", "sft"}
    assert order.read_text().split() == ["sft", "arm-a", "arm-b"]  # "old" was done before: not run again
    assert (tmp_path / "arm-a.done").exists()
