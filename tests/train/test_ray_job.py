"""`videop2r train` as a Ray Jobs entrypoint against a local `ray start --head`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from videop2r.train.metrics_log import read_metrics
from videop2r.local_services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def ray_head(tmp_path, monkeypatch):
    """A one-node Ray cluster on 127.0.0.1 with the job server; stopped by its own process group.

    Token auth is off for this loopback-only cluster (and its client), so the test does not depend
    on a token file in the user's home.
    """
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists() and not shutil.which("ray"):
        pytest.skip("the `ray` CLI is not installed")
    import ray

    if ray.is_initialized():  # a local Ray left by earlier tests holds Ray's default agent ports
        ray.shutdown()
    gcs_port, dashboard_port = free_port(), free_port()
    agent_ports = ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                   "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]
    temp_dir = Path("/tmp") / f"ray-p2r-{os.getpid()}-{gcs_port}"  # short: Ray's socket paths have a length limit
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs_port),
         "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard_port), "--temp-dir", str(temp_dir), "--disable-usage-stats",
         *agent_ports],
        stdout=open(tmp_path / "ray-head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"},
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()[-3000:]
            try:
                if httpx.get(f"{address}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Ray head did not come up"
            time.sleep(0.5)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_train_runs_as_a_ray_job(ray_head, make_config, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    run_dir = tmp_path / "job-run"
    config = make_config(tmp_path / "job.yaml", run_dir,
                         trainer={"total_steps": 1, "save_every": 1, "eval_before": False})
    client = JobSubmissionClient(ray_head)
    # the head answers /api/version before its job agent is up ("No available agent to submit job")
    agent_deadline = time.monotonic() + 120
    while True:
        try:
            job = client.submit_job(entrypoint=f"{sys.executable} -m videop2r train --config {config}")
            break
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > agent_deadline:
                raise
            time.sleep(2)
    deadline = time.monotonic() + 540
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert "connecting to the Ray cluster" in logs  # the job's cluster, not a private local Ray
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["stage"] == "pa_grpo"] == [1]
    assert (tmp_path / "store" / "checkpoints" / "job-run" / "pa_grpo" / "latest").is_file()
