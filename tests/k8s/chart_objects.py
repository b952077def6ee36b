"""Reading rendered chart objects the way Kubernetes and its operators do: pod templates of every
workload, label selectors, and the checks of the kinds whose CRDs are not at hand (Prometheus
Operator) or whose operator refuses more than its CRD (KubeRay). Shared by the chart tests."""

from __future__ import annotations

import re
from typing import Any

# one LabelSelector implementation for the chart tests and the rehearsal's NetworkPolicies
from infra.rehearsal.netpol import matches as selects

SETS = ["default", "everything", "external-s3", "external-judge", "cpu-only", "rehearsal"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
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
