"""charts/videop2r rendered by the real helm: the wiring between components: the config tree,
S3 credentials, the judge, the reward token, the models, Ray, jobs, dashboards, switched-off parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.chart_objects import SETS, pod_templates
from tests.k8s.conftest import CHART, ROOT
from videop2r.config import load_config

# -- wiring: config tree, S3, judge, Ray, dashboards ----------------------------------------------------

def config_tree(result, tmp_path: Path):
    text = result.get("ConfigMap", "rel-videop2r-config")["data"]["videop2r.yaml"]
    path = tmp_path / f"{result.name}.yaml"
    path.write_text(text)
    return load_config(path)


def service_url(result, name: str, port: int) -> str:
    service = result.get("Service", name)
    assert any(p["port"] == port for p in service["spec"]["ports"])
    return f"http://{name}.ml.svc:{port}"


@pytest.mark.parametrize("value_set", SETS)
def test_config_tree_is_valid_and_points_at_the_services(rendered, tmp_path, value_set):
    result = rendered[value_set]
    config = config_tree(result, tmp_path)
    assert config.rollout.endpoints == [service_url(result, "rel-videop2r-rollout", 30000)]
    assert config.rollout.video_transport == "source", "SGLang pods take the media source, not frames"
    assert config.reward.accuracy_endpoints == [service_url(result, "rel-videop2r-reward-accuracy", 8000)]
    assert config.reward.judge_endpoints == [service_url(result, "rel-videop2r-reward-judge", 8000)]
    assert config.metrics.port == 9400 and config.metrics.host == "0.0.0.0"
    head = result.get("RayCluster", "rel-videop2r")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "driver-metrics", "containerPort": 9400, "protocol": "TCP"} in head["ports"]
    if value_set == "external-s3":
        assert config.storage.uri == "s3://my-videop2r-bucket/team-a"
        assert config.storage.endpoint == "s3.eu-west-1.amazonaws.com" and config.storage.secure
    else:
        assert config.storage.endpoint == "rel-videop2r-minio.ml.svc:9000" and not config.storage.secure
        result.get("StatefulSet", "rel-videop2r-minio")
    if value_set == "everything":
        assert config.trainer.run_name == "paper-7b", "user config merges over the wiring"
        assert config.storage.uri == "s3://videop2r/runs"


def test_judge_wiring(rendered, tmp_path):
    internal = config_tree(rendered["default"], tmp_path)
    assert internal.reward.judge == "openai"
    assert internal.reward.judge_url == service_url(rendered["default"], "rel-videop2r-judge-llm", 30000) + "/v1"
    assert internal.reward.judge_model == "judge"
    external = rendered["external-judge"]
    config = config_tree(external, tmp_path)
    assert config.reward.judge_url == "https://judge.example.com/v1"
    assert config.reward.judge_model == "qwen2.5-vl-72b-instruct"
    assert not [d for d in external.of_kind("Deployment") if d["metadata"]["name"].endswith("judge-llm")]
    judge = external.get("Deployment", "rel-videop2r-reward-judge")["spec"]["template"]["spec"]["containers"][0]
    key = next(e for e in judge["env"] if e["name"] == config.reward.judge_api_key_env)
    assert key["valueFrom"]["secretKeyRef"] == {"name": "judge-credentials", "key": "token"}
    assert judge["args"][:9] == ["serve", "reward-judge", "--host", "0.0.0.0", "--port", "8000",
                                 "--config", "/etc/videop2r/videop2r.yaml", "--judge"]
    cpu = config_tree(rendered["cpu-only"], tmp_path)
    assert cpu.reward.judge == "evidence" and cpu.reward.judge_url is None


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_s3_credentials_come_from_secrets(rendered):
    internal = rendered["default"]
    secret = internal.get("Secret", "rel-videop2r-s3")
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    head = internal.get("RayCluster", "rel-videop2r")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert env_of(head)["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "rel-videop2r-s3", "key": "AWS_SECRET_ACCESS_KEY"}}
    external = rendered["external-s3"]
    assert not external.of_kind("Secret") and not external.of_kind("StatefulSet")
    head = external.get("RayCluster", "rel-videop2r")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = env_of(head)
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "videop2r-s3-credentials", "key": "access-key"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "videop2r-s3-credentials", "key": "secret-key"}}
    assert env["AWS_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com" and env["AWS_REGION"] == "eu-west-1"
    fetch = external.get("Deployment", "rel-videop2r-rollout")["spec"]["template"]["spec"]["initContainers"][0]
    assert env_of(fetch)["MODEL_S3_PATH"] == "videop2r/models/base"  # training.baseModel


def test_an_inline_judge_api_key_only_lands_in_its_secret(render_chart):
    result = render_chart(None, "--set", "judge.external.url=https://judge.example.com/v1",
                          "--set", "judge.external.apiKey.value=sk-do-not-leak")
    secret = result.get("Secret", "rel-videop2r-judge-api-key")
    assert secret["data"] == {"api-key": "c2stZG8tbm90LWxlYWs="}
    assert not [o for o in result.objects if "sk-do-not-leak" in yaml.safe_dump(o)]
    judge = result.get("Deployment", "rel-videop2r-reward-judge")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(judge)["VIDEOP2R_JUDGE_API_KEY"] == {"secretKeyRef": {"name": "rel-videop2r-judge-api-key", "key": "api-key"}}


def test_reward_token_reaches_services_and_clients(rendered):
    everything = rendered["everything"]
    everything.get("Secret", "rel-videop2r-reward-token")
    ref = {"secretKeyRef": {"name": "rel-videop2r-reward-token", "key": "token"}}
    for name in ("rel-videop2r-reward-accuracy", "rel-videop2r-reward-judge"):
        container = everything.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert env_of(container)["VIDEOP2R_REWARD_TOKEN"] == ref
    for owner, template in pod_templates(everything.objects):
        if owner.startswith("RayCluster"):
            assert env_of(template["spec"]["containers"][0])["VIDEOP2R_REWARD_TOKEN"] == ref, owner
    assert [s["metadata"]["name"] for s in rendered["default"].of_kind("Secret")] == ["rel-videop2r-s3"]


def test_rollout_model_from_pvc_or_store(rendered):
    judge = rendered["everything"].get("Deployment", "rel-videop2r-judge-llm")["spec"]["template"]["spec"]
    assert "initContainers" not in judge
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "judge-models", "readOnly": True}} in judge["volumes"]
    args = judge["containers"][0]["args"]
    assert args[args.index("--model-path") + 1] == "/models/qwen2.5-vl-72b"
    assert args[args.index("--tp-size") + 1] == "4"
    rollout = rendered["default"].get("Deployment", "rel-videop2r-rollout")["spec"]["template"]["spec"]
    assert rollout["initContainers"][0]["name"] == "fetch-model"
    assert rollout["containers"][0]["command"] == ["python3", "-m", "sglang.launch_server"]
    assert rollout["containers"][0]["args"][:2] == ["--model-path", "/models/model"]


@pytest.mark.parametrize("value_set", SETS)
def test_ray_pods_get_the_config_and_the_ray_container_first(rendered, value_set):
    cluster = rendered[value_set].get("RayCluster", "rel-videop2r")
    templates = [cluster["spec"]["headGroupSpec"]["template"]] + [g["template"] for g in cluster["spec"]["workerGroupSpecs"]]
    for template in templates:
        first = template["spec"]["containers"][0]
        assert first["name"].startswith("ray-")
        assert {"name": "config", "mountPath": "/etc/videop2r", "readOnly": True} in first["volumeMounts"]
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "config")
        assert volume["configMap"]["name"] == "rel-videop2r-config"


def test_jobs_select_the_cluster_of_a_release_named_videop2r(helm_run):
    done = helm_run("template", "videop2r", str(CHART), "--show-only", "templates/raycluster.yaml")
    assert done.returncode == 0, done.stderr
    cluster = yaml.safe_load(done.stdout)
    for job in sorted((ROOT / "jobs").glob("*.yaml")):
        selector = yaml.safe_load(job.read_text())["spec"]["clusterSelector"]
        assert selector == {"ray.io/cluster": cluster["metadata"]["name"]}, job.name


@pytest.mark.parametrize("value_set", SETS)
def test_dashboards_are_configmaps_of_the_sources(rendered, value_set):
    maps = [m for m in rendered[value_set].of_kind("ConfigMap") if "-dashboard-" in m["metadata"]["name"]]
    sources = sorted((ROOT / "infra" / "dashboards").glob("*.json"))
    assert len(maps) == len(sources) == 3
    for source in sources:
        found = rendered[value_set].get("ConfigMap", f"rel-videop2r-dashboard-{source.stem}")
        assert found["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(found["data"][source.name]) == json.loads(source.read_text())
    if value_set == "everything":
        assert maps[0]["metadata"]["annotations"] == {"grafana_folder": "VideoP2R"}


def test_components_switch_off_cleanly(render_chart, tmp_path):
    result = render_chart(None, *[arg for key in ("rollout", "rewardAccuracy", "rewardJudge", "rayCluster", "minio")
                                  for arg in ("--set", f"{key}.enabled=false")])
    kinds = sorted({o["kind"] for o in result.objects})
    assert kinds == ["ConfigMap", "PrometheusRule", "ServiceAccount"]  # config, dashboards, alerts
    config = config_tree(result, tmp_path)
    assert config.rollout.endpoints == [] and config.reward.judge_endpoints == []
    assert config.storage.uri == load_config().storage.uri, "no store: the program's default stays"
