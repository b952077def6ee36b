"""metrics.jsonl, Prometheus gauges with catalogued names, restore on resume."""

from __future__ import annotations

import json

import httpx
from prometheus_client import CollectorRegistry

from videop2r.metrics import CATALOG
from videop2r.train.metrics_log import MetricsLog, read_metrics, serve_metrics
from videop2r.local_services import free_port

STEP = {
    "reward/perception/accuracy": 0.5, "reward/perception/format": 1.0, "reward/reasoning/total": 1.7,
    "advantage/perception/abs_mean": 0.8, "collapse/reasoning": 0.25, "length/perception": 12.0,
    "actor/kl": 0.01, "actor/entropy": 2.5, "actor/policy_loss": -0.1, "rollout/mismatch_rate": 0.1,
    "rollout/tokens_per_s": 300.0, "time/update": 1.5, "not/catalogued": 3.0, "nan/value": float("nan"),
}


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels)


def test_a_step_goes_to_jsonl_and_to_catalogued_gauges(tmp_path):
    registry = CollectorRegistry()
    log = MetricsLog(tmp_path, "r1", registry=registry)
    log.log("pa_grpo", 3, STEP)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0]["step"] == 3 and rows[0]["stage"] == "pa_grpo" and rows[0]["not/catalogued"] == 3.0
    assert "nan/value" not in rows[0]
    assert _value(registry, "videop2r_reward", run="r1", process="perception", component="accuracy") == 0.5
    assert _value(registry, "videop2r_reward", run="r1", process="reasoning", component="total") == 1.7
    assert _value(registry, "videop2r_advantage_abs_mean", run="r1", process="perception") == 0.8
    assert _value(registry, "videop2r_advantage_collapse_fraction", run="r1", process="reasoning") == 0.25
    assert _value(registry, "videop2r_segment_length_tokens", run="r1", process="perception") == 12.0
    assert _value(registry, "videop2r_kl", run="r1") == 0.01
    assert _value(registry, "videop2r_think_answer_mismatch_rate", run="r1") == 0.1
    assert _value(registry, "videop2r_train_step", run="r1", stage="pa_grpo") == 3
    assert _value(registry, "videop2r_train_phase_seconds_count", run="r1", phase="update") == 1
    exported = {m.name for m in registry.collect()}
    assert exported <= {name.removesuffix("_total") for name in CATALOG}


def test_restore_rewrites_the_file_without_rows_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path, "r", registry=CollectorRegistry())
    for step in (1, 2, 3):
        log.log("pa_grpo", step, {"reward/reasoning/total": step})
    log.restore(log.history[:2])
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]
    with open(tmp_path / "metrics.jsonl", "a") as out:
        out.write('{"stage": "pa_grpo", "st')  # a writer killed mid-line
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 2


def test_tensorboard_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_DIR", raising=False)
    log = MetricsLog(tmp_path, "r", loggers=["jsonl", "tensorboard"], stage="sft", registry=CollectorRegistry())
    log.log("sft", 1, {"sft/nll": 2.0})
    log.close()
    assert list((tmp_path / "tensorboard" / "sft").glob("events.out.tfevents.*"))


def test_driver_metrics_endpoint_serves_per_process_rewards(tmp_path):
    registry = CollectorRegistry()
    port = serve_metrics(free_port(), "127.0.0.1", registry)
    MetricsLog(tmp_path, "r2", registry=registry).log("pa_grpo", 1, STEP)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'videop2r_reward{component="accuracy",process="perception",run="r2"} 0.5' in text
    assert serve_metrics(0) == 0
    assert json.loads(json.dumps(read_metrics(tmp_path / "metrics.jsonl")))
