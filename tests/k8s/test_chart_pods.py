"""charts/videop2r rendered by the real helm: what a reviewer checks by hand on every pod and
selector: security, resources, labels, probes, Services, NetworkPolicies, HPAs and PDBs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.k8s.chart_objects import SETS, component, containers, pod_templates, selected_pods
from videop2r.metrics import CATALOG

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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
    args = rollout["spec"]["containers"][0]["args"]
    assert args[args.index("--device") + 1] == "cpu"


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
        if policy["metadata"]["name"].startswith("rel-videop2r-ray-"):
            continue  # the Ray pods' own policies: test_deploy_blockers.py
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
    expected = set() if value_set in ("cpu-only", "rehearsal") else {"rel-videop2r-reward-accuracy", "rel-videop2r-reward-judge"}
    assert hpas == expected
    if value_set == "everything":
        judge = result.get("HorizontalPodAutoscaler", "rel-videop2r-reward-judge")
        assert [m["pods"]["metric"]["name"] for m in judge["spec"]["metrics"]] == ["videop2r_judge_in_flight"]
