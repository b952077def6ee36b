"""SFT then PA-GRPO end to end with the real services over loopback, and exact resume after SIGKILL.

Each command runs in its own process, with its own local Ray, the embedded rollout server and
both reward services (evidence judge) started as real local processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from videop2r.train.metrics_log import read_metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = 3
SFT_STEPS = 40  # enough for the tiny model to sometimes write the template: rewards then differ in a group
LOGGERS = ["console", "jsonl", "tensorboard", "wandb"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _latest(store: Path, run: str) -> int:
    try:
        return json.loads((store / "checkpoints" / run / "pa_grpo" / "latest").read_text())["step"]
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, assets, run_cli):
    """SFT (1 step), then PA-GRPO for STEPS steps, uninterrupted."""
    from .conftest import write_config  # noqa: PLC0415 - module fixture needs the plain helper

    base = tmp_path_factory.mktemp("stages")
    run_dir = base / "reference"
    config = write_config(base / "reference.yaml", assets, run_dir,
                          trainer={"total_steps": STEPS, "eval_every": 2, "loggers": LOGGERS,
                                   "sft": {"steps": SFT_STEPS, "batch_size": 2, "lr": 2e-3, "lr_schedule": "constant"}})
    started = time.monotonic()
    offline = {"WANDB_MODE": "offline", "WANDB_DIR": str(run_dir)}  # W&B: a local run folder, nothing sent
    sft = run_cli("sft", "--config", str(config), env=offline)
    train = run_cli("train", "--config", str(config), f"model.path={run_dir / 'sft-model'}", env=offline)
    return {"base": base, "run_dir": run_dir, "config": config, "sft": sft, "train": train,
            "seconds": time.monotonic() - started}


def test_sft_then_pa_grpo_writes_models_metrics_checkpoints_and_report(reference_run, assets):
    run_dir, store = reference_run["run_dir"], reference_run["base"] / "store"
    sft_model = run_dir / "sft-model"
    assert json.loads((sft_model / "weight_version.json").read_text())["version"] == SFT_STEPS
    assert _max_difference(_weights(sft_model), _weights(assets["model"])) > 0  # SFT moved the weights

    rows = read_metrics(run_dir / "metrics.jsonl")
    sft_rows = [r for r in rows if r["stage"] == "sft"]
    assert len(sft_rows) == SFT_STEPS and sft_rows[-1]["sft/nll"] < sft_rows[0]["sft/nll"]
    steps = [r for r in rows if r["stage"] == "pa_grpo"]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    for row in steps:
        for process in ("perception", "reasoning"):
            for component in ("accuracy", "format", "length", "total"):
                assert 0 <= row[f"reward/{process}/{component}"] <= 2.2
            assert 0 <= row[f"collapse/{process}"] <= 1
            assert f"advantage/{process}/abs_mean" in row and f"length/{process}" in row
        assert row["actor/kl"] >= 0 and row["actor/entropy"] > 0
        assert row["rollout/tokens_per_s"] > 0 and row["time/update"] > 0 and row["time/rollout_and_reward"] > 0
        assert row["rollout/failed_prompts"] == 0
    assert any(r["stage"] == "pa_grpo_eval" and r["step"] == 2 for r in rows)  # eval_every=2
    assert any(min(r["collapse/perception"], r["collapse/reasoning"]) < 1 for r in steps)  # something to learn

    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in evals if e["final"]] == ["initial", "sft", "pa_grpo"]
    report = (run_dir / "report.md").read_text()
    for stage in ("initial", "sft", "pa_grpo"):
        assert f"| {stage} |" in report
    assert (run_dir / "rewards_perception.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard" / "pa_grpo").glob("events.*"))

    checkpoints = store / "checkpoints" / "reference" / "pa_grpo"
    assert _latest(store, "reference") == STEPS
    final = checkpoints / f"step-{STEPS:06d}"
    assert (final / "MANIFEST.json").is_file() and (final / "learner" / "learner_state.json").is_file()
    assert sorted(p.name for p in checkpoints.glob("step-*")) == [f"step-{s:06d}" for s in (STEPS - 1, STEPS)]
    assert _max_difference(_weights(final / "hf"), _weights(sft_model)) > 0  # PA-GRPO moved them too
    published = run_dir / "pa_grpo-model"  # the final policy, as an ordinary HF checkpoint
    assert json.loads((published / "weight_version.json").read_text())["version"] == STEPS
    assert _max_difference(_weights(published), _weights(final / "hf")) == 0
    print(f"reference SFT + PA-GRPO wall time: {reference_run['seconds']:.0f}s")


def test_published_models_carry_their_card_and_load_with_plain_transformers(reference_run):
    from .test_model_card import check_card, load_and_generate  # noqa: PLC0415

    run_dir, store = reference_run["run_dir"], reference_run["base"] / "store"
    for stage, folder in (("sft", run_dir / "sft-model"), ("pa_grpo", run_dir / "pa_grpo-model")):
        check_card(folder, stage, run_dir)
        assert isinstance(load_and_generate(folder), str)
    # exports from the SFT model do not copy its card: a checkpoint is not the SFT model
    final = store / "checkpoints" / "reference" / "pa_grpo" / f"step-{STEPS:06d}" / "hf"
    assert (final / "model.safetensors").is_file() and not (final / "README.md").exists()


def test_every_logger_holds_the_same_step_series(reference_run):
    """trainer.loggers=[console,jsonl,tensorboard,wandb]: each stage's rows (steps, evaluations, the parity
    gate's) in all four."""
    from .test_tracking import jsonl_series, read_tensorboard, read_wandb, series_diff  # noqa: PLC0415

    run_dir = reference_run["run_dir"]
    for stage, proc in (("sft", reference_run["sft"]), ("pa_grpo", reference_run["train"])):
        rows = [r for r in read_metrics(run_dir / "metrics.jsonl")
                if r["stage"] == stage or r["stage"].startswith(f"{stage}_")]  # sft_eval, pa_grpo_parity, ...
        expected = jsonl_series(rows)
        assert expected["videop2r_reward/perception/total" if stage == "pa_grpo" else "sft/nll"]
        board, config = read_tensorboard(run_dir / "tensorboard" / stage)
        assert not series_diff(board, expected), series_diff(board, expected)
        assert "run_name: reference" in config
        history, wandb_config = read_wandb(run_dir, f"reference-{stage}")
        assert not series_diff(history, expected), series_diff(history, expected)
        assert wandb_config["trainer"]["loggers"] == LOGGERS
        console = [line for line in proc.stdout.splitlines() if line.startswith("step:")]
        assert len(console) == len(rows)
        assert [int(line.split(" - ")[0].removeprefix("step:")) for line in console] == [r["step"] for r in rows]


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _start(args: list[str], log_path: Path) -> subprocess.Popen:
    # A Ctrl-C at a terminal reaches a process whose SIGINT is at its default. A runner started in
    # the background by a shell without job control (`cmd &`, nohup) ignores SIGINT, children
    # inherit that, and Python then installs no KeyboardInterrupt handler: reset it (coreutils env).
    return subprocess.Popen(["env", "--default-signal=INT", *args], stdout=open(log_path, "w"),
                            stderr=subprocess.STDOUT)


def _wait_for_checkpoint(process: subprocess.Popen, store: Path, run: str, step: int, log_path: Path) -> None:
    deadline = time.monotonic() + 480
    while _latest(store, run) < step:
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no checkpoint {step} within the time limit"
        time.sleep(0.2)


def test_ctrl_c_then_sigkill_then_resume_ends_with_the_uninterrupted_weights(reference_run, make_config, run_cli):
    """Stopped by Ctrl-C after step 1, resumed and SIGKILLed after step 2, resumed to the end."""
    from videop2r.storage import open_store
    from videop2r.train.checkpoint import CheckpointStore

    base, store = reference_run["base"], reference_run["base"] / "store"
    run_dir = base / "interrupted"
    config = make_config(base / "interrupted.yaml", run_dir,
                         trainer={"total_steps": STEPS, "eval_every": 2, "eval_before": False})
    sft_model = reference_run["run_dir"] / "sft-model"
    args = [sys.executable, "-m", "videop2r", "train", "--config", str(config), f"model.path={sft_model}"]

    # 1. Ctrl-C: a clean stop, the last checkpoint stays valid
    first = _start(args, base / "ctrl-c.log")
    _wait_for_checkpoint(first, store, "interrupted", 1, base / "ctrl-c.log")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130, (base / "ctrl-c.log").read_text()[-2000:]
    checkpoints = CheckpointStore(open_store(str(store)), "checkpoints/interrupted/pa_grpo")
    stopped_at = checkpoints.latest()
    assert stopped_at is not None and checkpoints.is_complete(stopped_at) and stopped_at.step < STEPS

    # 2. resumed, then really killed: SIGKILL, no handler runs
    second = _start([*args, "--resume"], base / "killed.log")
    _wait_for_checkpoint(second, store, "interrupted", stopped_at.step + 1, base / "killed.log")
    descendants = _children(second.pid)
    second.send_signal(signal.SIGKILL)
    second.wait()
    killed_at = _latest(store, "interrupted")
    assert stopped_at.step < killed_at < STEPS
    time.sleep(2)
    for child in descendants:  # what a SIGKILLed driver may leave behind (its servers die with it)
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass

    # 3. resumed to the end
    run_cli(*args[3:], "--resume")
    assert _latest(store, "interrupted") == STEPS
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["stage"] == "pa_grpo"]
    assert steps == list(range(1, STEPS + 1))  # the rows of redone steps are not duplicated

    final = f"step-{STEPS:06d}/hf"
    resumed = _weights(store / "checkpoints" / "interrupted" / "pa_grpo" / final)
    uninterrupted = _weights(store / "checkpoints" / "reference" / "pa_grpo" / final)
    moved = _max_difference(uninterrupted, _weights(sft_model))
    assert moved > 0
    assert _max_difference(resumed, uninterrupted) <= 1e-5 + 1e-3 * moved, (stopped_at.step, killed_at, moved)


def test_sft_resumes_from_its_checkpoint(make_config, run_cli, tmp_path):
    run_dir = tmp_path / "sft-resume"
    config = make_config(tmp_path / "sft.yaml", run_dir,
                         trainer={"eval_before": False, "sft": {"steps": 2, "save_every": 1}})
    run_cli("sft", "--config", str(config))
    first = _weights(run_dir / "sft-model")
    run_cli("sft", "--config", str(config), "trainer.sft.steps=3", "--resume")
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["stage"] == "sft"]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["actor/step"] == 3  # the optimizer and scheduler went on from step 2
    assert json.loads((run_dir / "sft-model" / "weight_version.json").read_text())["version"] == 3
    assert _max_difference(_weights(run_dir / "sft-model"), first) > 0
