"""charts/videop2r rendered by the real helm: lint, schema, every object validated, and the
properties a reviewer would check by hand (security, resources, labels, probes, selectors)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from videop2r.config import load_config
from videop2r.k8s.crd_schema import validate_custom_resource
from videop2r.metrics import CATALOG

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "videop2r"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SETS = ["default", "everything", "external-s3", "external-judge", "cpu-only"]
KUBERNETES_VERSION = "1.35"
WORKLOADS = ("Deployment", "StatefulSet", "Job")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


# -- pod templates and label selectors ----------------------------------------------------------

def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(owner description, pod template) of every workload, Ray head and worker groups included."""
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in WORKLOADS:
            found.append((name, obj["spec"]["template"]))
        elif obj["kind"] == "RayCluster":
            found.append((f"{name}/head", obj["spec"]["headGroupSpec"]["template"]))
            for group in obj["spec"].get("workerGroupSpecs", []):
                found.append((f"{name}/{group['groupName']}", group["template"]))
    return found


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selected_pods(objects, selector) -> list[tuple[str, dict[str, Any]]]:
    return [(owner, t) for owner, t in pod_templates(objects) if selects(selector, t["metadata"].get("labels", {}))]


def component(template: dict[str, Any]) -> str:
    return template["metadata"]["labels"]["app.kubernetes.io/component"]


def monitoring_problems(obj: dict[str, Any], objects: list[dict[str, Any]]) -> list[str]:
    """Structure of the Prometheus Operator kinds (their CRDs are not at hand)."""
    spec, problems = obj.get("spec") or {}, []
    if obj["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {obj['apiVersion']}")
    if obj["kind"] == "ServiceMonitor":
        services = [s for s in objects if s["kind"] == "Service"
                    and selects(spec.get("selector", {}), s["metadata"].get("labels", {}))]
        if not spec.get("selector", {}).get("matchLabels") or not services:
            problems.append("selector matches no Service")
        for endpoint in spec.get("endpoints") or [{}]:
            if not any(endpoint.get("port") == p.get("name") for s in services for p in s["spec"]["ports"]):
                problems.append(f"endpoint port {endpoint.get('port')!r} is no port name of the selected Services")
            if not str(endpoint.get("path", "")).startswith("/") or not DURATION.match(str(endpoint.get("interval"))):
                problems.append(f"endpoint path/interval {endpoint}")
    elif obj["kind"] == "PodMonitor":
        pods = selected_pods(objects, spec.get("selector", {}))
        if not pods:
            problems.append("selector matches no pod")
        for endpoint in spec.get("podMetricsEndpoints") or [{}]:
            names = {p.get("name") for _, t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])}
            if endpoint.get("port") not in names:
                problems.append(f"podMetricsEndpoint port {endpoint.get('port')!r} not on the selected pods")
    elif obj["kind"] == "PrometheusRule":
        groups = spec.get("groups") or []
        if not groups:
            problems.append("no rule groups")
        for group in groups:
            for rule in group.get("rules") or [None]:
                if not rule or not rule.get("expr") or not (rule.get("alert") or rule.get("record")):
                    problems.append(f"group {group.get('name')}: incomplete rule {rule}")
    else:
        problems.append(f"unexpected kind {obj['kind']}")
    return problems


def kuberay_problems(cluster: dict[str, Any]) -> list[str]:
    """What the KubeRay operator refuses besides the CRD schema (ValidateRayClusterSpec/Metadata)."""
    problems, name = [], cluster["metadata"]["name"]
    if len(name) > 53 or not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name):
        problems.append(f"RayCluster name {name!r}")
    spec = cluster["spec"]
    if not spec["headGroupSpec"]["template"]["spec"].get("containers"):
        problems.append("head has no container")
    for group in spec.get("workerGroupSpecs", []):
        if not group["template"]["spec"].get("containers"):
            problems.append(f"{group['groupName']} has no container")
        if not group.get("minReplicas", 0) <= group.get("replicas", 0) <= group.get("maxReplicas", 0):
            problems.append(f"{group['groupName']}: replicas outside [minReplicas, maxReplicas]")
        resources = {"num-cpus", "num-gpus", "memory", "resources"}
        if resources & set(group.get("rayStartParams", {})) and group.get("resources"):
            problems.append("resources set in both rayStartParams and resources")
    return problems


# -- helm lint and the schema ----------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.stem if v else "default")
def test_helm_lint_strict(helm_run, values):
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    done = helm_run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_every_ci_value_set_is_rendered():
    assert sorted(v.stem.removesuffix("-values") for v in CI_VALUES) == sorted(s for s in SETS if s != "default")


@pytest.mark.parametrize(("assignment", "message"), [
    (["rewardJudge.judge=gpt"], "/rewardJudge/judge"),
    (["rollout.replicas=-1"], "/rollout/replicas"),
    (["rollot.replicas=2"], "additional properties 'rollot' not allowed"),
    (["rewardAccuracy.autoscaling.enabled=yes"], "/rewardAccuracy/autoscaling/enabled"),
    (["securityContext.allowPrivilegeEscalation=true"], "/securityContext/allowPrivilegeEscalation"),
    (["podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
    (["s3.external.enabled=true"], "/s3/external/existingSecret"),
    (["rollout.model.source=ftp"], "/rollout/model/source"),
    (["monitoring.serviceMonitors.interval=15"], "/monitoring/serviceMonitors/interval"),
    (["rewardJudge.resources.limits.cpu=two"], "/rewardJudge/resources/limits/cpu"),
    (["minio.auth.rootPassword=short"], "/minio/auth/rootPassword"),
    (["judge.external.url=judge.example.com"], "/judge/external/url"),
    (["rayCluster.learner.groupName=GPU_Workers"], "/rayCluster/learner/groupName"),
], ids=lambda a: a[0] if isinstance(a, list) else None)
def test_schema_rejects_invalid_values(helm_run, assignment, message):
    done = helm_run("template", "rel", str(CHART), *[f"--set={a}" for a in assignment])
    assert done.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


@pytest.mark.parametrize(("assignment", "message"), [
    (["judge.llm.enabled=false"], "rewardJudge.judge=openai needs a judge LLM"),
    (["rayCluster.learner.minReplicas=5"], "minReplicas is greater than maxReplicas"),
    (["rollout.model.source=pvc"], "model.claimName is required when model.source is pvc"),
    (["fullnameOverride=1st-run"], "is not a DNS-1035 label"),
    (["minio.enabled=false", "rollout.model.source=s3"], "rollout.model.source=s3 needs the store"),
], ids=lambda a: a[0] if isinstance(a, list) else None)
def test_inconsistent_values_fail_with_a_message(helm_run, assignment, message):
    done = helm_run("template", "rel", str(CHART), *[f"--set={a}" for a in assignment])
    assert done.returncode != 0, f"{assignment} was accepted"
    assert message in done.stderr, done.stderr


# -- every object validates ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cached_core_schemas():
    """kubernetes-validate reads its (large) JSON schemas for every object: read each once."""
    import functools

    import kubernetes_validate.utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents",
                      functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents))
        yield


@pytest.mark.parametrize("value_set", SETS)
def test_core_objects_validate_strictly(rendered, cached_core_schemas, value_set):
    failures = []
    for obj in rendered[value_set].objects:
        if obj["apiVersion"].startswith(("ray.io/", "monitoring.coreos.com/")):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {getattr(exc, 'message', exc)}")
    assert not failures, "\n".join(failures)


def test_strict_core_validation_catches_unknown_fields(rendered, cached_core_schemas):
    deployment = json.loads(json.dumps(rendered["default"].of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("value_set", SETS)
def test_raycluster_validates_against_the_kuberay_crd(rendered, crd_schemas, value_set):
    clusters = rendered[value_set].of_kind("RayCluster")
    assert len(clusters) == 1
    violations = validate_custom_resource(clusters[0], crd_schemas)
    assert not violations, "\n".join(map(str, violations))
    assert not kuberay_problems(clusters[0])


@pytest.mark.parametrize("value_set", SETS)
def test_monitoring_objects_are_well_formed(rendered, value_set):
    objects = rendered[value_set].objects
    monitoring = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    kinds = sorted({o["kind"] for o in monitoring})
    assert kinds == ["PodMonitor", "PrometheusRule", "ServiceMonitor"]
    problems = [f"{o['kind']}/{o['metadata']['name']}: {p}" for o in monitoring for p in monitoring_problems(o, objects)]
    assert not problems, "\n".join(problems)
    for monitor in rendered[value_set].of_kind("ServiceMonitor"):
        assert all(e["honorLabels"] for e in monitor["spec"]["endpoints"]), "code labels must win over target labels"


def test_without_the_prometheus_operator_no_monitoring_objects(render_chart):
    objects = render_chart(None, monitoring=False).objects
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert [o for o in objects if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]]


# -- security, resources, labels, probes -----------------------------------------------------------

@pytest.mark.parametrize("value_set", SETS)
def test_every_pod_is_locked_down(rendered, value_set):
    templates = pod_templates(rendered[value_set].objects)
    assert len(templates) >= 5
    for owner, template in templates:
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert pod["automountServiceAccountToken"] is False, owner
        for container in containers(template):
            where = f"{owner}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context.get("privileged", False) is False, where
            assert "ALL" in context["capabilities"]["drop"], where
            assert not context["capabilities"].get("add"), where
            assert context["readOnlyRootFilesystem"] is True, where
            # A read-only root needs somewhere to write: every container mounts /tmp.
            assert any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])), where


@pytest.mark.parametrize("value_set", SETS)
def test_every_container_has_requests_and_limits(rendered, value_set):
    for owner, template in pod_templates(rendered[value_set].objects):
        for container in containers(template):
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{owner}/{container['name']} {bound}"


def gpus_of(template: dict[str, Any]) -> int:
    limits = template["spec"]["containers"][0]["resources"]["limits"]
    return int(limits.get("nvidia.com/gpu", 0))


def test_gpu_requests_follow_the_values(rendered):
    default = rendered["default"]
    assert gpus_of(default.get("Deployment", "rel-videop2r-rollout")["spec"]["template"]) == 1
    assert gpus_of(rendered["everything"].get("Deployment", "rel-videop2r-rollout")["spec"]["template"]) == 2
    assert gpus_of(rendered["everything"].get("Deployment", "rel-videop2r-judge-llm")["spec"]["template"]) == 4
    learner = default.get("RayCluster", "rel-videop2r")["spec"]["workerGroupSpecs"][0]["template"]
    assert gpus_of(learner) == 8
    for owner, template in pod_templates(rendered["cpu-only"].objects):
        for container in containers(template):
            for bound in ("requests", "limits"):
                assert "nvidia.com/gpu" not in container["resources"][bound], owner
    rollout = rendered["cpu-only"].get("Deployment", "rel-videop2r-rollout")["spec"]["template"]
    assert rollout["spec"]["containers"][0]["args"][-3:-1] == ["--device", "cpu"]


REQUIRED_LABELS = ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
                   "app.kubernetes.io/component")


@pytest.mark.parametrize("value_set", SETS)
def test_labels_and_names(rendered, value_set):
    for obj in rendered[value_set].objects:
        meta, what = obj["metadata"], f"{obj['kind']}/{obj['metadata']['name']}"
        assert set(REQUIRED_LABELS) <= set(meta["labels"]), what
        assert meta["labels"]["app.kubernetes.io/instance"] == "rel", what
        assert DNS1123_LABEL.match(meta["name"]) and len(meta["name"]) <= 63, what
        assert meta["namespace"] == "ml", what
    for owner, template in pod_templates(rendered[value_set].objects):
        assert set(REQUIRED_LABELS) <= set(template["metadata"]["labels"]), owner
    if value_set == "everything":
        assert all(o["metadata"]["labels"]["team"] == "video-rl" for o in rendered[value_set].objects)


@pytest.mark.parametrize("value_set", SETS)
def test_long_running_servers_have_probes_on_their_ports(rendered, value_set):
    for obj in rendered[value_set].objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            where = f"{obj['metadata']['name']}/{container['name']}"
            ports = {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, where
            if container["name"] == "sglang":
                assert container["startupProbe"]["httpGet"]["path"] == "/health", where
                assert container["livenessProbe"]["httpGet"]["path"] == "/health", where
            if container["name"].startswith("reward-"):
                assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", where


# -- selectors: Services, NetworkPolicies, HPAs, PDBs -------------------------------------------------

@pytest.mark.parametrize("value_set", SETS)
def test_services_select_their_pods_and_ports(rendered, value_set):
    objects = rendered[value_set].objects
    for service in rendered[value_set].of_kind("Service"):
        pods = selected_pods(objects, {"matchLabels": service["spec"]["selector"]})
        name = service["metadata"]["name"]
        assert pods, f"Service {name} selects no pod"
        assert {component(t) for _, t in pods} == {service["metadata"]["labels"]["app.kubernetes.io/component"]}
        for port in service["spec"]["ports"]:
            names = {p["name"] for _, t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])}
            assert port["targetPort"] in names, f"{name}: targetPort {port['targetPort']}"
    rollout = rendered[value_set].get("Service", "rel-videop2r-rollout")
    assert rollout["spec"]["clusterIP"] == "None", "rollout must be headless so the driver fans out"


RAY = {"ray-head", "ray-learner"}
EXPECTED_CLIENTS = {"rollout": RAY, "reward-accuracy": RAY, "reward-judge": RAY,
                    "judge-llm": {"reward-judge"}, "minio": RAY | {"rollout", "judge-llm", "minio-buckets"}}


@pytest.mark.parametrize("value_set", SETS)
def test_network_policies_admit_only_their_clients(rendered, value_set):
    objects = rendered[value_set].objects
    policies = rendered[value_set].of_kind("NetworkPolicy")
    assert policies
    for policy in policies:
        spec, name = policy["spec"], policy["metadata"]["name"]
        targets = selected_pods(objects, spec["podSelector"])
        assert len(targets) == 1, f"{name} selects {[o for o, _ in targets]}"
        target = component(targets[0][1])
        ports = {p["containerPort"] for c in targets[0][1]["spec"]["containers"] for p in c.get("ports", [])}
        assert spec["policyTypes"] == ["Ingress"]
        clients_rule, *scrape_rules = spec["ingress"]
        clients = {component(t) for peer in clients_rule["from"] for _, t in selected_pods(objects, peer["podSelector"])}
        expected = set(EXPECTED_CLIENTS[target])
        if target == "judge-llm" and value_set == "everything":
            expected |= RAY  # networkPolicy.judgeLLMFromRay
        present = {component(t) for _, t in pod_templates(objects)}
        assert clients == expected & present, f"{name}: {clients}"
        for rule in (clients_rule, *scrape_rules):
            assert {p["port"] for p in rule["ports"]} <= ports, name
        for rule in scrape_rules:  # Prometheus: a namespace, never "everyone"
            assert rule["from"][0]["namespaceSelector"]["matchLabels"]


def test_judge_llm_is_reachable_from_reward_judge_only(rendered):
    policy = rendered["default"].get("NetworkPolicy", "rel-videop2r-judge-llm")
    peers = policy["spec"]["ingress"][0]["from"]
    allowed = {component(t) for peer in peers for _, t in selected_pods(rendered["default"].objects, peer["podSelector"])}
    assert allowed == {"reward-judge"}


@pytest.mark.parametrize("value_set", SETS)
def test_hpas_and_pdbs_target_existing_deployments(rendered, value_set):
    result = rendered[value_set]
    deployments = {d["metadata"]["name"]: d for d in result.of_kind("Deployment")}
    for hpa in result.of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in deployments, f"HPA {hpa['metadata']['name']} -> missing {target['name']}"
        assert "replicas" not in deployments[target["name"]]["spec"], "the HPA owns the replica count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in CATALOG
    for pdb in result.of_kind("PodDisruptionBudget"):
        pods = selected_pods(result.objects, pdb["spec"]["selector"])
        assert [owner for owner, _ in pods] == [f"Deployment/{pdb['metadata']['name']}"]
    hpas = {h["metadata"]["name"] for h in result.of_kind("HorizontalPodAutoscaler")}
    expected = set() if value_set == "cpu-only" else {"rel-videop2r-reward-accuracy", "rel-videop2r-reward-judge"}
    assert hpas == expected
    if value_set == "everything":
        judge = result.get("HorizontalPodAutoscaler", "rel-videop2r-reward-judge")
        assert judge["spec"]["metrics"][1]["pods"]["metric"]["name"] == "videop2r_judge_in_flight"


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
    assert env_of(fetch)["MODEL_S3_PATH"] == "videop2r/models/policy"


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


def test_shared_weights_volume_joins_learner_and_rollout(rendered):
    mounts = {}
    for owner, template in pod_templates(rendered["everything"].objects):
        container = template["spec"]["containers"][0]
        mount = next((m for m in container["volumeMounts"] if m["name"] == "shared-weights"), None)
        if mount:
            volume = next(v for v in template["spec"]["volumes"] if v["name"] == "shared-weights")
            assert volume["persistentVolumeClaim"]["claimName"] == "videop2r-weights"
            mounts[component(template)] = mount.get("readOnly", False)
    assert mounts == {"ray-head": False, "ray-learner": False, "rollout": True}
    assert not [t for _, t in pod_templates(rendered["default"].objects)
                if any(v["name"] == "shared-weights" for v in t["spec"].get("volumes", []))]


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


def test_notes_render_for_every_value_set(helm_run):
    for values in [None, *CI_VALUES]:
        args = ["install", "rel", str(CHART), "--dry-run=client", "--namespace", "ml"]
        done = helm_run(*args, *(["-f", str(values)] if values else []))
        assert done.returncode == 0, done.stderr
        assert "videop2r submit jobs/pa-grpo.yaml" in done.stdout
        assert "monitoring.coreos.com/v1 is not served" in done.stdout


def test_components_switch_off_cleanly(render_chart, tmp_path):
    result = render_chart(None, *[arg for key in ("rollout", "rewardAccuracy", "rewardJudge", "rayCluster", "minio")
                                  for arg in ("--set", f"{key}.enabled=false")])
    kinds = sorted({o["kind"] for o in result.objects})
    assert kinds == ["ConfigMap", "PrometheusRule", "ServiceAccount"]  # config, dashboards, alerts
    config = config_tree(result, tmp_path)
    assert config.rollout.endpoints == [] and config.reward.judge_endpoints == []
    assert config.storage.uri == load_config().storage.uri, "no store: the program's default stays"
