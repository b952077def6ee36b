"""`make replication` shortened: 1 seed, 2 RL arms + SFT, tiny sizes — the whole path through the real CLI.

Every job is the `videop2r` command a user runs (model init, sft, train with the embedded rollout
server), so this checks the study's wiring end to end: dumps written by the loop, results.json
with every part, report and plots. The full study is `make replication` (configs/replication.yaml).
"""

from __future__ import annotations

import json

import pytest

from videop2r.replication.__main__ import main

pytestmark = pytest.mark.slow

TINY = ["seeds=[0]", "arms=[pa_grpo,grpo,sft]", "task.sft_clips=16", "task.rl_clips=16", "task.val_clips=8",
        "task.test_clips=8", "train.trainer.sft.steps=4", "train.trainer.sft.eval_every=0",
        "train.trainer.total_steps=2", "train.trainer.eval_every=1", "train.trainer.prompts_per_step=2",
        "train.trainer.mini_batch_size=16", "bootstrap=200"]


def test_a_tiny_study_runs_end_to_end(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("REPLICATION_SEEDS", raising=False)
    out = tmp_path / "replication"
    argv = ["--config", "configs/replication.yaml", "--out", str(out)]
    for item in TINY:
        argv += ["--set", item]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == {"pa_grpo", "grpo", "sft"}
    for arm in results["arms"].values():
        assert len(arm["final_acc"]) == 1 and 0 <= arm["mean"] <= 1 and len(arm["perception_acc"]) == 1
    assert {(d["a"], d["b"]) for d in results["differences"]} == {("pa_grpo", "grpo"), ("pa_grpo", "sft"),
                                                                   ("grpo", "sft")}
    gate = results["gate"]["per_seed"]["0"]
    assert gate["groups"] == 2 and results["gate"]["branch"] in ("compare", "null-expected")
    assert set(results["collapse"]) == {"pa_grpo", "grpo"}
    assert set(results["collapse"]["pa_grpo"]) == {"perception", "reasoning"}
    assert set(results["mismatch"]) == {"pa_grpo", "grpo", "sft"}
    assert results["wall_s"] > 0 and results["test_items"] == 8
    rollouts = [json.loads(line) for line in (out / "seed-0" / "pa_grpo" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * 2 * 8  # steps × prompts × G
    assert {"r_p", "r_r", "adv_p", "adv_r", "sufficient", "text"} <= set(rollouts[0])
    # the grpo arm trains on the outcome only: its perception reward carries no judge term
    grpo = [json.loads(line) for line in (out / "seed-0" / "grpo" / "rollouts.jsonl").read_text().splitlines()]
    assert [r["uid"] for r in grpo] == [r["uid"] for r in rollouts]  # same prompts, same order
    assert sorted(results["curves"]["grpo"]["0"]) == ["0", "1", "2"] or sorted(results["curves"]["grpo"][0]) == [0, 1, 2]
    report = (out / "report.md").read_text()
    assert "Does PA-GRPO help?" in report and (out / "heldout_accuracy.png").exists()
