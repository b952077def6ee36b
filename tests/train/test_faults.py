"""A reward or rollout endpoint that dies mid-run, and a clip that does not decode, do not stop a run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from videop2r.train.metrics_log import read_metrics
from videop2r.config import load_config
from videop2r.rollout.sglang_release import mm_process_config
from videop2r.local_services import LocalServices, accuracy_service, judge_service, rollout_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = 3


def test_killing_services_mid_run_and_a_bad_clip(assets, make_config, tmp_path):
    logs = tmp_path / "service-logs"
    model = str(assets["model"])
    data = {"train_uri": str(assets["faulty_shards"]), "shuffle": False}  # the broken clip comes first
    # the pods' video config, as the chart renders it: frames kept as the learner samples them
    pod_video = ["--mm-process-config",
                 json.dumps(mm_process_config(load_config(make_config(tmp_path / "data.yaml", tmp_path, data=data)).data))]
    services = [rollout_service(model, logs, "rollout-a", ["--threads", "1", *pod_video]),
                rollout_service(model, logs, "rollout-b", ["--threads", "1", *pod_video]),
                accuracy_service(logs, extra=["--workers", "1"]), judge_service(logs, "evidence")]
    with LocalServices(services) as running:
        run_dir = tmp_path / "faults"
        config = make_config(
            tmp_path / "faults.yaml", run_dir,
            data=data,
            rollout={"endpoints": running.urls("rollout"), "max_retries": 3, "retry_backoff_s": 0.1},
            reward={"accuracy_endpoints": running.urls("reward-accuracy"),
                    "judge_endpoints": running.urls("reward-judge"), "request_retries": 1},
            trainer={"total_steps": STEPS, "save_every": 0, "eval_before": False, "local_reward_services": False},
        )
        driver = subprocess.Popen([sys.executable, "-m", "videop2r", "train", "--config", str(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 480
        while not [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("stage") == "pa_grpo"]:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        running.by_name("rollout-a").kill()  # a rollout pod and the only reward-accuracy pod die
        running.by_name("reward-accuracy").kill()
        output, _ = driver.communicate(timeout=480)
    assert driver.returncode == 0, output[-3000:]
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("stage") == "pa_grpo"]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(r["rollout/failed_prompts"] == 0 for r in rows)  # routed around, not dropped
    last = rows[-1]
    assert last["data/skipped"] >= 1 and last["faults/samples_skipped"] >= 1  # the broken clip
    assert last["faults/endpoint_failures"] >= 1  # the dead endpoints were tried, counted, avoided
    assert last["faults/reward_fallbacks"] >= 1  # scoring went on in-process
    assert "broken-clip" in output  # one log line names the skipped record
