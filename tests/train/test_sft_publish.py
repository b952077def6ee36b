"""Which SFT model is published (keep_best) and which evaluation is recorded as its final one."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from videop2r.config import load_config
from videop2r.train.sft import SFTSteps


class Runtime:
    """The parts of a StageRuntime that SFTSteps.publish uses; the held-out accuracy per step is given."""

    def __init__(self, run_dir, accuracy: dict[int, float]) -> None:
        self.config = load_config(overrides=["trainer.sft.steps=4", "trainer.sft.keep_best=true"])
        self.paths, self.eval_samples, self.accuracy = SimpleNamespace(run_dir=run_dir), ["held-out"], accuracy
        self.calls: list[tuple] = []

    def publish_weights(self, learner, step):
        self.calls.append(("publish_weights", step))
        return SimpleNamespace(path=f"weights/v{step}")

    def evaluate(self, tag, step, **kwargs):
        self.calls.append(("evaluate", tag, step))
        row = {"reasoning_accuracy": self.accuracy[step], "n": 1}
        return SimpleNamespace(reasoning_accuracy=self.accuracy[step], as_row=lambda: dict(row))

    def sync_from(self, learner, uri, version):
        self.calls.append(("sync_from", uri, version))


def _steps(tmp_path, accuracy: dict[int, float]) -> tuple[SFTSteps, Runtime, list]:
    runtime, exported = Runtime(tmp_path, accuracy), []
    learner = SimpleNamespace(export_weights=lambda uri, step: exported.append((uri, step)))
    stage = SimpleNamespace(runtime=runtime, learner=learner, run=SimpleNamespace(driver_state={}),
                            seconds=lambda: 7.0)
    return SFTSteps(stage, str(tmp_path / "sft-model")), runtime, exported


def _final_rows(tmp_path) -> list[dict]:
    rows = [json.loads(line) for line in (tmp_path / "evals.jsonl").read_text().splitlines()]
    return [row for row in rows if row["final"]]


@pytest.fixture
def uploads(monkeypatch) -> list[tuple]:
    done: list[tuple] = []
    monkeypatch.setattr("videop2r.train.weight_sync.upload_export", lambda src, dst, storage: done.append((src, dst)))
    return done


def test_an_earlier_better_step_is_kept_and_recorded_as_final(tmp_path, uploads):
    steps, runtime, exported = _steps(tmp_path, {2: 0.8, 4: 0.5})
    steps.consider_best(2, runtime.evaluate("during_sft", 2))
    result = steps.publish()
    output = str(tmp_path / "sft-model")
    assert exported == [(output, 2)] and uploads == []  # the best export stays; the last weights are not uploaded
    assert runtime.calls[-1] == ("sync_from", output, 2)  # the rollout endpoints serve the kept model
    assert result == {"reasoning_accuracy": 0.8, "n": 1, "step": 2}
    [final] = _final_rows(tmp_path)
    assert (final["stage"], final["model"], final["step"], final["stage_seconds"]) == ("sft", output, 2, 7.0)


def test_the_last_step_is_published_when_it_is_as_good(tmp_path, uploads):
    steps, runtime, exported = _steps(tmp_path, {2: 0.5, 4: 0.5})
    steps.consider_best(2, runtime.evaluate("during_sft", 2))
    result = steps.publish()
    # step 2's export at output_path (the best so far) is replaced by the last weights
    assert exported == [(str(tmp_path / "sft-model"), 2)] and uploads == [("weights/v4", str(tmp_path / "sft-model"))]
    assert result == {"reasoning_accuracy": 0.5, "n": 1}  # the evaluation of the last weights, as it was taken
    [final] = _final_rows(tmp_path)
    assert final["step"] == 4 and final["reasoning_accuracy"] == 0.5


def test_without_keep_best_the_published_model_is_evaluated_as_the_stage_result(tmp_path, uploads):
    steps, runtime, _ = _steps(tmp_path, {4: 0.25})
    steps.sft = steps.sft.model_copy(update={"keep_best": False})
    assert steps.publish() == {"reasoning_accuracy": 0.25, "n": 1}
    assert runtime.calls == [("publish_weights", 4), ("evaluate", "sft", 4)]
    assert uploads == [("weights/v4", str(tmp_path / "sft-model"))]
