"""`make demo`'s script end to end, shrunk: synth → pack → init → SFT → PA-GRPO → report.

The sizes are cut through the script's own knobs (clip counts, DEMO_OVERRIDES) and the run goes
to a temporary VIDEOP2R_DEMO_DIR, so this checks the wiring of the README's main command, not the
learning (that is measured by `make demo` itself and reported in its report.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SMALL = " ".join([
    "trainer.sft.steps=2", "trainer.sft.eval_every=0", "trainer.sft.batch_size=4",
    "trainer.total_steps=2", "trainer.eval_every=0", "trainer.save_every=1", "trainer.prompts_per_step=2",
    "rollout.n=4", "trainer.mini_batch_size=8", "trainer.micro_batch_size=8", "trainer.eval_max_samples=4",
    "learner.threads=1", "metrics.progress=false",
])


def test_demo_script_runs_every_stage_into_its_own_directory(project_root: Path, tmp_path: Path):
    run = tmp_path / "demo"
    default_run = project_root / "runs" / "demo"
    before = _snapshot(default_run)
    env = {**os.environ, "VIDEOP2R_BIN": str(Path(sys.executable).parent), "VIDEOP2R_DEMO_DIR": str(run),
           "DEMO_TRAIN_CLIPS": "6", "DEMO_EVAL_CLIPS": "4", "DEMO_OVERRIDES": SMALL}
    done = subprocess.run(["bash", str(project_root / "infra" / "demo.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = (run / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "%" in line]
    assert [row.split("|")[1].strip() for row in rows[:3]] == ["initial", "sft", "pa_grpo"]
    assert "make demo wall time" in report and report in done.stdout
    for plot in ("rewards_perception.png", "rewards_reasoning.png"):
        assert (run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every path of the run moved with VIDEOP2R_DEMO_DIR: the project's runs/demo was not touched
    assert _snapshot(default_run) == before
    assert json.loads((run / "model" / "sft" / "weight_version.json").read_text())["version"] == 2
    assert json.loads((run / "pa_grpo-model" / "weight_version.json").read_text())["version"] == 2
    assert (run / "store" / "checkpoints" / "demo" / "pa_grpo").is_dir()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("stage") == "pa_grpo"]
    assert steps == [1, 2]
    # the published models carry the card with the demo's table, and load with plain transformers
    from .test_model_card import check_card, load_and_generate  # noqa: PLC0415

    for stage, folder in (("sft", run / "model" / "sft"), ("pa_grpo", run / "pa_grpo-model")):
        check_card(folder, stage, run)
        assert isinstance(load_and_generate(folder), str)
    card = (run / "pa_grpo-model" / "README.md").read_text()
    assert all(row in card for row in rows[:3])  # report.md's rows: initial, sft, pa_grpo


def _snapshot(directory: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")} if directory.is_dir() else {}
