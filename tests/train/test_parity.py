"""Rollout-vs-learner log-prob parity: the gap metric, the gate before step 1, and its alert.

The rollout side is the real embedded server app (in this process, over HTTP through httpx's
ASGI transport); the learner side scores the same tokens with ``response_log_probs``, the
function the learner's FSDP actors run. Two silent multimodal failures are built in:

- an engine that drops the video: its prefill replaces the video's pixels with zeros (what a
  server that ignores ``video_data`` and sees blank frames computes), and
- an engine with stale weights: it serves another checkpoint than the learner's model.path.

Both must make the gate refuse and push the gap metric over the alert's threshold; the healthy
engine must pass with a gap near 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import torch
import yaml
from prometheus_client import CollectorRegistry

from videop2r.train.parity import ParityGateRefused, batch_gap, logprob_gap, parity_gate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yaml"


def test_gap_of_identical_and_shifted_log_probs():
    rollout = torch.tensor([[-1.0, -2.0, -3.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    same = logprob_gap(rollout, rollout.clone(), mask)
    assert same == {"rollout/logprob_abs_diff": 0.0, "rollout/logprob_kl": 0.0}
    shifted = logprob_gap(rollout, rollout + torch.tensor([[0.5, -0.5, 0.5, 9.0]]), mask)
    assert shifted["rollout/logprob_abs_diff"] == pytest.approx(0.5)  # the padded column does not count
    k3 = (torch.exp(torch.tensor([0.5, -0.5, 0.5])) - 1 - torch.tensor([0.5, -0.5, 0.5])).mean()
    assert shifted["rollout/logprob_kl"] == pytest.approx(float(k3))
    assert logprob_gap(rollout, rollout, torch.zeros_like(mask)) == {}
    batch = SimpleNamespace(batch={"rollout_log_probs": rollout, "old_log_probs": rollout + 0.25,
                                   "response_mask": mask})
    assert batch_gap(batch)["rollout/logprob_abs_diff"] == pytest.approx(0.25)
    assert batch_gap(SimpleNamespace(batch={"old_log_probs": rollout, "response_mask": mask})) == {}


def test_the_gap_reaches_prometheus_from_a_step_row(tmp_path):
    from videop2r.train.metrics_log import MetricsLog

    registry = CollectorRegistry()
    log = MetricsLog(tmp_path, "r", registry=registry)
    log.log("pa_grpo_parity", 0, {"rollout/logprob_abs_diff": 0.25, "rollout/logprob_kl": 0.05})
    assert registry.get_sample_value("videop2r_rollout_logprob_abs_diff", {"run": "r"}) == 0.25
    assert registry.get_sample_value("videop2r_rollout_logprob_kl", {"run": "r"}) == 0.05
    log.close()


# -- the gate against the embedded server --------------------------------------------------------------


class InProcessLearner:
    """compute_log_prob as the learner's actors do it (response_log_probs), on one CPU model."""

    def __init__(self, model_path: Path, config) -> None:
        from videop2r.model import load_model, load_processor, vision_token_ids

        self.model = load_model(str(model_path), dtype="float32", device="cpu").eval()
        self.blocked = list(vision_token_ids(load_processor(str(model_path)).tokenizer))
        self.temperature = config.rollout.temperature

    def compute_log_prob(self, batch):
        from verl import DataProto

        from videop2r.learner.logprob import response_log_probs

        with torch.no_grad():
            log_probs, _ = response_log_probs(self.model, batch, self.temperature, False, "cpu", self.blocked)
        return DataProto.from_dict(tensors={"old_log_probs": log_probs})


def drop_video(engine) -> None:
    """The engine sees blank frames whatever video_data says."""
    real = engine._prefill

    def prefill(job, copies, encode_once):
        inputs = dict(job.inputs)
        if inputs.get("pixel_values_videos") is not None:
            inputs["pixel_values_videos"] = torch.zeros_like(inputs["pixel_values_videos"])
        return real(type(job)(inputs, job.sampling, job.rid, job.input_logprob_start), copies, encode_once)

    engine._prefill = prefill


@contextlib.contextmanager
def gate_loop(config, served_model: Path, learner_model: Path, *, broken=None):
    """The pieces of a PAGRPOLoop the gate uses, over one embedded server serving `served_model`."""
    from services.rollout.app import create_app
    from services.rollout.engine import GenerationEngine
    from videop2r.model import load_processor, vision_token_ids
    from videop2r.rollout import RolloutClient, sampling_params
    from videop2r.train.loop import PAGRPOLoop

    engine = GenerationEngine.load(str(served_model), device="cpu")
    if broken is not None:
        broken(engine)
    from services.rollout.media_sources import MediaSources

    # the pod's video config from the run's data config (sglang_release.mm_process_config)
    app = create_app(engine, media=MediaSources(config.data), registry=CollectorRegistry())
    processor = load_processor(str(learner_model))
    stack = contextlib.AsyncExitStack()

    async def start():
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = RolloutClient(["http://pod"], transport=httpx.ASGITransport(app=app))
        stack.push_async_callback(client.aclose)
        return client

    with asyncio.Runner() as runner:
        client = runner.run(start())
        loop = SimpleNamespace(
            config=config, learner=InProcessLearner(learner_model, config),
            pad_id=int(processor.tokenizer.pad_token_id),
            rt=SimpleNamespace(processor=processor, runner=runner, rollout=client),
            sampling=sampling_params(config.rollout, blocked_token_ids=list(vision_token_ids(processor.tokenizer))))
        loop.payload = lambda prompt, seed: PAGRPOLoop.payload(loop, prompt, seed)
        try:
            yield loop
        finally:
            runner.run(stack.aclose())


@pytest.fixture(scope="module")
def gate_config(assets):
    from videop2r.config import VideoP2RConfig

    return VideoP2RConfig.model_validate({
        "data": {"train_uri": str(assets["train_shards"]), "fps": 2.0, "max_frames": 8, "video_min_pixels": 7056,
                 "video_max_pixels": 7056, "decode_workers": 1, "prefetch": 0},
        "model": {"path": str(assets["model"])},
        "rollout": {"n": 3, "max_new_tokens": 16, "temperature": 1.0, "parity_prompts": 2},
    })


@pytest.fixture(scope="module")
def other_model(assets, tmp_path_factory) -> Path:
    """Another checkpoint of the same architecture and tokenizer (stale weights)."""
    from videop2r.model import load_model

    target = tmp_path_factory.mktemp("stale") / "model"
    shutil.copytree(assets["model"], target)
    model = load_model(str(assets["model"]), dtype="float32", device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def measured(gate_config, assets, other_model) -> dict[str, dict[str, float]]:
    """The gap measured on the fixed batch by each engine (the gate's own measurement)."""
    recorded: dict[str, dict[str, float]] = {}
    cases = {"healthy": (assets["model"], None), "drops_video": (assets["model"], drop_video),
             "stale_weights": (other_model, None)}
    for name, (served, broken) in cases.items():
        with gate_loop(gate_config, served, assets["model"], broken=broken) as loop:
            try:
                parity_gate(loop, record=lambda gap, name=name: recorded.__setitem__(name, gap))
            except ParityGateRefused as exc:
                recorded[name]["refused"] = str(exc)
    print("parity gap measured:", {k: {m: v for m, v in g.items() if m != "refused"} for k, g in recorded.items()})
    return recorded


def test_the_healthy_embedded_server_passes_the_gate(measured, gate_config):
    healthy = measured["healthy"]
    assert "refused" not in healthy
    assert healthy["rollout/logprob_abs_diff"] < gate_config.rollout.parity_max_logprob_gap / 10
    assert healthy["rollout/logprob_kl"] < 1e-4


@pytest.mark.parametrize("failure", ["drops_video", "stale_weights"])
def test_a_silent_multimodal_failure_makes_the_gate_refuse(measured, gate_config, failure):
    gap = measured[failure]
    assert gap["rollout/logprob_abs_diff"] > gate_config.rollout.parity_max_logprob_gap
    assert gap["rollout/logprob_abs_diff"] > 10 * measured["healthy"]["rollout/logprob_abs_diff"]
    message = gap["refused"]
    assert "parity gate" in message and "rollout.parity_max_logprob_gap=0.05" in message
    assert "refusing to start" in message and "drop the video" in message


def test_the_alert_fires_on_the_measured_gaps_and_not_on_the_healthy_one(measured, tmp_path):
    """promtool evaluates the real alert rule on series holding the gaps the gate measured."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (run `bash infra/tools/prometheus.sh`)")
    shutil.copy(RULES, tmp_path / "alerts.yaml")
    series, expected = [], []
    for name, gap in measured.items():
        for metric, key in (("videop2r_rollout_logprob_abs_diff", "rollout/logprob_abs_diff"),
                            ("videop2r_rollout_logprob_kl", "rollout/logprob_kl")):
            series.append({"series": f'{metric}{{run="{name}"}}', "values": f"{gap[key]:.6g}x30"})
        if name != "healthy":
            value = float(f"{gap['rollout/logprob_abs_diff']:.6g}")
            expected.append({"exp_labels": {"severity": "critical", "run": name}, "exp_annotations": {
                "summary": f"Rollout and learner disagree on the tokens of run {name}",
                "description": f"Mean |rollout log p - learner log p| over the same tokens is {value:.3f} (alert "
                               f"above 0.05): the rollout engine may drop the video or generate with stale "
                               f"weights, so the run trains on another policy's samples."}})
    assert len(expected) == 2
    test = {"rule_files": ["alerts.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "20m", "alertname": "VideoP2RRolloutLearnerMismatch",
                             "exp_alerts": expected}]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    done = subprocess.run([promtool, "test", "rules", "test.yaml"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
