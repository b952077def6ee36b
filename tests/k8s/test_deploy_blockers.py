"""The deployment blockers of a PA-GRPO run on a real cluster, each checked on `helm template`
output: required inputs and outputs on the store, install order, the driver's placement, the Ray
pods' NetworkPolicies, headless reward Services, the judge's autoscaling, RayCluster upgrades and
stable Secrets. KubeRay behaviour is cited from ray-project/kuberay at commit feeaf72 (the
vendored CRDs' commit)."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.chart_objects import component, pod_templates, selected_pods, selects
from tests.k8s.conftest import CHART
from videop2r.config import load_config

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted((ROOT / "jobs").glob("*.yaml"))


def config_of(result, key: str, tmp_path: Path):
    path = tmp_path / key
    path.write_text(result.get("ConfigMap", "rel-videop2r-config")["data"][key])
    return load_config(path)


# -- 1. inputs are required, outputs go to the store ---------------------------------------------------

@pytest.mark.parametrize(("unset", "message"), [
    ("training.trainUri", "training.trainUri is required"),
    ("training.baseModel", "training.baseModel is required"),
])
def test_missing_training_values_fail_the_render_by_name(helm_run, unset, message):
    done = helm_run("template", "rel", str(CHART), "--set", f"{unset}=")
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_the_bare_chart_names_what_it_needs(helm_run):
    done = helm_run("template", "rel", str(CHART), bare=True)
    assert done.returncode != 0
    assert "is required" in done.stderr, done.stderr


@pytest.mark.parametrize("value_set", ["default", "everything", "external-s3", "cpu-only"])
def test_stages_chain_through_the_store(rendered, tmp_path, value_set):
    result = rendered[value_set]
    pa_grpo, sft = config_of(result, "videop2r.yaml", tmp_path), config_of(result, "sft.yaml", tmp_path)
    store = pa_grpo.storage.uri
    assert store.startswith("s3://")
    for config in (pa_grpo, sft):
        assert config.data.train_uri == "s3://videop2r/data/train"
        assert config.data.eval_uri == "s3://videop2r/data/eval"
        # every output a later stage or a rollout pod reads is on the store, not in a pod
        assert config.trainer.sft.output_path == f"{store}/models/sft"
        assert config.trainer.output_path == f"{store}/models/pa-grpo"
    assert sft.model.path == "s3://videop2r/models/base"      # SFT starts from training.baseModel
    assert pa_grpo.model.path == sft.trainer.sft.output_path  # PA-GRPO from what SFT publishes
    for job in JOBS:
        argv = shlex.split(yaml.safe_load(job.read_text())["spec"]["entrypoint"])
        key = Path(argv[argv.index("--config") + 1]).name
        assert key in result.get("ConfigMap", "rel-videop2r-config")["data"], job.name
        for arg in argv:
            if arg.startswith("trainer.output_dir="):  # scratch, but writable: the head's /tmp emptyDir
                assert arg.split("=", 1)[1].startswith("/tmp/"), job.name


def test_an_explicit_sft_model_and_the_rollout_start_model(render_chart, tmp_path):
    result = render_chart(None, "--set", "training.sftModel=s3://models/sft-7b",
                          "--set", "rollout.model.s3Path=models/start")
    assert config_of(result, "videop2r.yaml", tmp_path).model.path == "s3://models/sft-7b"
    fetch = result.get("Deployment", "rel-videop2r-rollout")["spec"]["template"]["spec"]["initContainers"][0]
    assert {"name": "MODEL_S3_PATH", "value": "models/start"} in fetch["env"]


# -- 2. no install-order deadlock ---------------------------------------------------------------------

@pytest.mark.parametrize("value_set", ["default", "everything", "cpu-only"])
def test_nothing_waits_on_a_hook(rendered, value_set):
    for obj in rendered[value_set].objects:
        annotations = obj["metadata"].get("annotations") or {}
        assert "helm.sh/hook" not in annotations, f"{obj['kind']}/{obj['metadata']['name']} is a hook"
    [job] = rendered[value_set].of_kind("Job")
    assert job["metadata"]["name"] == "rel-videop2r-minio-buckets-r1"  # a fresh Job per revision


def fake_tools(directory: Path, missing_polls: int) -> None:
    """`mc` that finds the model only after `missing_polls` stats, and a `sleep` that returns at once."""
    directory.mkdir()
    (directory / "count").write_text("0")
    scripts = {
        "mc": f"""#!/bin/sh
echo "$*" >> {directory}/calls
case "$3" in
  stat) n=$(cat {directory}/count); echo $((n + 1)) > {directory}/count; [ "$n" -ge {missing_polls} ] ;;
  *) exit 0 ;;
esac
""",
        "sleep": "#!/bin/sh\nexit 0\n",
    }
    for name, body in scripts.items():
        (directory / name).write_text(body)
        (directory / name).chmod(stat.S_IRWXU)


def test_the_model_fetch_waits_for_the_upload_instead_of_failing(rendered, tmp_path):
    spec = rendered["default"].get("Deployment", "rel-videop2r-rollout")["spec"]["template"]["spec"]
    fetch = spec["initContainers"][0]
    assert fetch["command"] == ["/bin/sh", "-ec"]
    tools = tmp_path / "bin"
    fake_tools(tools, missing_polls=3)
    env = {"PATH": f"{tools}:{os.environ['PATH']}", "AWS_ENDPOINT_URL": "http://store:9000",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           **{e["name"]: e["value"] for e in fetch["env"] if "value" in e}}
    done = subprocess.run(["/bin/sh", "-ec", fetch["args"][0]], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("waiting for the model: upload an HF checkpoint to s3://videop2r/models/base/") == 3
    calls = (tools / "calls").read_text().splitlines()
    assert calls[-1].endswith("mirror --overwrite store/videop2r/models/base /models/model")


# -- 5. learner workers = the GPUs of the worker group ---------------------------------------------------

@pytest.mark.parametrize(("value_set", "workers"), [("default", 8), ("everything", 16), ("cpu-only", 1)])
def test_learner_workers_are_the_gpus_of_the_group(rendered, tmp_path, value_set, workers):
    config = config_of(rendered[value_set], "videop2r.yaml", tmp_path)
    assert config.learner.num_workers == workers
    group = rendered[value_set].get("RayCluster", "rel-videop2r")["spec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert config.learner.num_workers == max(1, int(limits.get("nvidia.com/gpu", 0))) * group["replicas"]


# -- 6. the driver runs on the head --------------------------------------------------------------------

def head_resources(cluster: dict[str, Any]) -> dict[str, float]:
    """rayStartParams.resources as KubeRay reads it (pod.go getResourcesMap: quotes trimmed, JSON)."""
    raw = cluster["spec"]["headGroupSpec"]["rayStartParams"]["resources"]
    parsed = json.loads(raw.strip("'\"` "))
    # KubeRay puts ` --resources=<raw> ` into the container's one shell command (pod.go
    # convertParamMap, BuildPod): the shell must hand `ray start` the same JSON
    [flag] = shlex.split(f"--resources={raw}")
    assert json.loads(flag.split("=", 1)[1]) == parsed
    return parsed


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_every_driver_is_pinned_to_the_head(rendered, job):
    cluster = rendered["default"].get("RayCluster", "rel-videop2r")
    on_head = head_resources(cluster)
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert "resources" not in group.get("rayStartParams", {}), "a worker must not offer the driver resources"
    spec = yaml.safe_load(job.read_text())["spec"]
    wanted = json.loads(spec["entrypointResources"])
    assert wanted and all(0 < amount <= on_head.get(name, 0) for name, amount in wanted.items()), wanted
    if job.stem in ("pa-grpo", "sft"):  # one training driver (its /metrics port) at a time
        assert wanted == {"videop2r_driver": 1} and on_head["videop2r_driver"] == 1


def test_the_podmonitor_scrapes_the_pod_the_driver_is_pinned_to(rendered):
    monitor = rendered["default"].get("PodMonitor", "rel-videop2r-driver")
    assert [component(t) for _, t in selected_pods(rendered["default"].objects, monitor["spec"]["selector"])] == \
        ["ray-head"]


# -- 7. the Ray head's NetworkPolicy ---------------------------------------------------------------------

def submitter_labels() -> list[dict[str, str]]:
    return [yaml.safe_load(job.read_text())["spec"]["submitterPodTemplate"]["metadata"]["labels"] for job in JOBS]


def admitted(objects, policy, labels: dict[str, str], port: int, namespace_labels: dict[str, str] | None = None) -> bool:
    """Does `policy` admit a pod with `labels` (in the release namespace unless namespace_labels)?"""
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                if namespace_labels is None and peer["namespaceSelector"]:
                    continue
                if namespace_labels is not None and not selects(peer["namespaceSelector"], namespace_labels):
                    continue
            elif namespace_labels is not None:
                continue  # a podSelector alone means the policy's own namespace
            if "podSelector" not in peer or selects(peer["podSelector"], labels):
                return True
    return False


@pytest.mark.parametrize("value_set", ["default", "everything", "cpu-only"])
def test_the_ray_head_is_closed_to_all_but_its_clients(rendered, value_set):
    objects = rendered[value_set].objects
    policy = rendered[value_set].get("NetworkPolicy", "rel-videop2r-ray-head")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [component(t) for _, t in selected_pods(objects, policy["spec"]["podSelector"])] == ["ray-head"]
    labels = {component(t): t["metadata"]["labels"] for _, t in pod_templates(objects)}
    gcs, dashboard, client, metrics = 6379, 8265, 10001, 9400
    for port in (gcs, dashboard, client, 52365, 12345):  # every Ray port between Ray pods
        assert admitted(objects, policy, labels["ray-learner"], port), port
    for job_labels in submitter_labels():
        assert admitted(objects, policy, job_labels, dashboard)
        assert not admitted(objects, policy, job_labels, gcs) and not admitted(objects, policy, job_labels, client)
    operator = {"app.kubernetes.io/name": "kuberay-operator"}
    assert admitted(objects, policy, operator, dashboard, namespace_labels={"kubernetes.io/metadata.name": "kuberay"})
    assert not admitted(objects, policy, operator, gcs, namespace_labels={"kubernetes.io/metadata.name": "kuberay"})
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    assert admitted(objects, policy, {}, metrics, namespace_labels=monitoring)
    assert not admitted(objects, policy, {}, dashboard, namespace_labels=monitoring)
    for other in set(labels) - {"ray-head", "ray-learner"}:  # rollout, rewards, judge, MinIO, bucket Job
        for port in (gcs, dashboard, client, metrics):
            assert not admitted(objects, policy, labels[other], port), (other, port)


def test_the_learner_pods_take_only_ray_traffic(rendered):
    objects = rendered["default"].objects
    policy = rendered["default"].get("NetworkPolicy", "rel-videop2r-ray-learner")
    assert [component(t) for _, t in selected_pods(objects, policy["spec"]["podSelector"])] == ["ray-learner"]
    labels = {component(t): t["metadata"]["labels"] for _, t in pod_templates(objects)}
    assert admitted(objects, policy, labels["ray-head"], 29500)
    for other in set(labels) - {"ray-head", "ray-learner"}:
        assert not admitted(objects, policy, labels[other], 29500), other


# -- 8. reward load spreads over the pods; the judge scales on what it waits for ---------------------------

@pytest.mark.parametrize("service", ["rollout", "reward-accuracy", "reward-judge"])
def test_services_the_driver_fans_out_over_are_headless(rendered, tmp_path, service):
    svc = rendered["default"].get("Service", f"rel-videop2r-{service}")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is False
    config = config_of(rendered["default"], "videop2r.yaml", tmp_path)
    urls = {"rollout": config.rollout.endpoints, "reward-accuracy": config.reward.accuracy_endpoints,
            "reward-judge": config.reward.judge_endpoints}[service]
    assert urls == [f"http://rel-videop2r-{service}.ml.svc:{svc['spec']['ports'][0]['port']}"]


def test_the_judge_scales_on_judge_calls_in_flight(rendered, helm_run):
    hpa = rendered["default"].get("HorizontalPodAutoscaler", "rel-videop2r-reward-judge")
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": "videop2r_judge_in_flight"}, "target": {"type": "AverageValue", "averageValue": "16"}}}]
    accuracy = rendered["default"].get("HorizontalPodAutoscaler", "rel-videop2r-reward-accuracy")
    assert [m["type"] for m in accuracy["spec"]["metrics"]] == ["Resource"]  # CPU-bound: CPU
    done = helm_run("template", "rel", str(CHART), "--set", "rewardJudge.autoscaling.targetInFlightPerPod=0")
    assert done.returncode != 0 and "reward-judge.autoscaling needs a metric" in done.stderr


# -- 9. upgrades: one Ray version at a time, the same secrets on every render --------------------------------

@pytest.mark.parametrize("value_set", ["default", "everything", "cpu-only"])
def test_the_raycluster_is_recreated_on_a_spec_change(rendered, value_set):
    cluster = rendered[value_set].get("RayCluster", "rel-videop2r")
    # KubeRay ValidateRayClusterUpgradeOptions: Recreate or None, and only on a user-made RayCluster
    assert cluster["spec"]["upgradeStrategy"] == {"type": "Recreate"}
    assert "ray.io/originated-from-crd" not in cluster["metadata"]["labels"]


def test_secrets_are_the_same_on_every_render(helm_run):
    def secrets() -> list[dict[str, Any]]:
        done = helm_run("template", "rel", str(CHART), "--set", "rewardAuth.enabled=true")
        assert done.returncode == 0, done.stderr
        return [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Secret"]

    first, second = secrets(), secrets()
    assert {s["metadata"]["name"] for s in first} == {"rel-videop2r-s3", "rel-videop2r-reward-token"}
    assert first == second


@pytest.mark.parametrize(("unset", "message"), [
    ("minio.auth.rootPassword", "minio.auth.rootPassword is required"),
    ("rewardAuth.token", "rewardAuth.enabled needs rewardAuth.token"),
])
def test_a_secret_without_its_value_fails_instead_of_being_random(helm_run, unset, message):
    done = helm_run("template", "rel", str(CHART), "--set", "rewardAuth.enabled=true", "--set", f"{unset}=")
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_an_existing_secret_needs_no_password(helm_run):
    done = helm_run("template", "rel", str(CHART), "--set", "minio.auth.rootPassword=",
                    "--set", "minio.auth.existingSecret=my-minio")
    assert done.returncode == 0, done.stderr
    assert not [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Secret"]


@pytest.mark.parametrize("value_set", ["default", "everything", "external-s3", "external-judge", "cpu-only"])
def test_the_rendered_trees_pass_the_start_checks(rendered, tmp_path, value_set):
    """What prepare_run checks before anything starts (batch sizes against learner.num_workers)."""
    from videop2r.train.run import check_config

    check_config(config_of(rendered[value_set], "videop2r.yaml", tmp_path), "pa_grpo")
    check_config(config_of(rendered[value_set], "sft.yaml", tmp_path), "sft")


def test_the_readme_values_file_is_all_an_install_needs(helm_run, tmp_path):
    """charts/videop2r/README.md, section 2: its my-values.yaml renders on its own (REGISTRY filled)."""
    text = (CHART / "README.md").read_text()
    section = text[text.index("## 2. Install the chart"):text.index("## 3. Submit")]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    values = tmp_path / "my-values.yaml"
    values.write_text(block.replace("REGISTRY", "registry.example.com/team"))
    done = helm_run("install", "videop2r", str(CHART), "--dry-run=client", "--namespace", "ml", "-f", str(values),
                    bare=True)
    assert done.returncode == 0, done.stderr
    objects = [d for d in yaml.safe_load_all(done.stdout.split("NOTES:")[0]) if d and "kind" in d]
    cluster = next(o for o in objects if o["kind"] == "RayCluster")
    assert cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.com/team/videop2r:0.1.0"
