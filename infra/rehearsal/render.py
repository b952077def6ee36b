"""The chart as Kubernetes would see it: `helm template` output parsed into workloads and pod specs.

Everything a kubelet needs to start a pod is resolved here and nothing else: env from literal
values, ConfigMap and Secret keys (Secret `data` is base64 as the API stores it), `$(VAR)`
references in env, command and args (Kubernetes' own expansion rules: an unknown reference stays
as written, `$$` escapes), named container ports, volumes and mounts, the pod's runAsUser/Group.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "videop2r"
VALUES = CHART / "ci" / "rehearsal-values.yaml"
RELEASE = "videop2r"
NAMESPACE = "ml"

# Helm 4's install order for the kinds this chart renders (pkg/release/util/kind_sorter.go,
# InstallOrder); kinds not listed go last, as Helm does with unknown kinds.
INSTALL_ORDER = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
                 "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
                 "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
                 "ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
                 "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
                 "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
                 "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService"]


class RenderError(RuntimeError):
    """The chart did not render, or rendered something the rehearsal cannot run."""


@dataclass
class Probe:
    kind: str                      # http | exec | tcp
    port: int = 0
    path: str = "/"
    command: list[str] = field(default_factory=list)
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3


@dataclass
class Mount:
    volume: str
    path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass
class Container:
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: list[dict[str, Any]]
    working_dir: str
    ports: dict[str, int]
    mounts: list[Mount]
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    read_only_root: bool = False


@dataclass
class PodTemplate:
    """One pod template: what a Deployment/StatefulSet/Job/KubeRay stamps pods from."""

    owner: str                      # e.g. Deployment/videop2r-rollout
    component: str                  # app.kubernetes.io/component
    labels: dict[str, str]
    run_as_user: int
    run_as_group: int
    fs_group: int | None
    init_containers: list[Container]
    containers: list[Container]
    volumes: dict[str, dict[str, Any]]
    restart_policy: str = "Always"
    pull_secrets: list[str] = field(default_factory=list)


@dataclass
class Workload:
    kind: str
    name: str
    replicas: int
    template: PodTemplate
    hook: str = ""                  # helm.sh/hook value, empty for a plain resource
    backoff_limit: int = 6


@dataclass
class Render:
    objects: list[dict[str, Any]]
    configmaps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]


def helm_template(values: Path = VALUES, extra_sets: list[str] | None = None) -> str:
    helm = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    command = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values)]
    for item in extra_sets or []:
        command += ["--set", item]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise RenderError(f"helm not runnable ({exc}); `make tools` installs it") from None
    if done.returncode != 0:
        raise RenderError(f"helm template failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def parse(text: str) -> Render:
    objects = [o for o in yaml.safe_load_all(text) if isinstance(o, dict) and o.get("kind")]
    configmaps: dict[str, dict[str, str]] = {}
    secrets: dict[str, dict[str, str]] = {}
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap":
            configmaps[name] = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        elif obj["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
            secrets[name] = data
    return Render(objects, configmaps, secrets)


def install_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {kind: i for i, kind in enumerate(INSTALL_ORDER)}
    return sorted(objects, key=lambda o: rank.get(o["kind"], len(rank)))


def _probe(spec: dict[str, Any] | None, ports: dict[str, int]) -> Probe | None:
    if not spec:
        return None
    common = dict(initial_delay_s=float(spec.get("initialDelaySeconds", 0)),
                  period_s=float(spec.get("periodSeconds", 10)), timeout_s=float(spec.get("timeoutSeconds", 1)),
                  failure_threshold=int(spec.get("failureThreshold", 3)))
    if "httpGet" in spec:
        port = spec["httpGet"]["port"]
        return Probe("http", port=ports[port] if isinstance(port, str) else int(port),
                     path=spec["httpGet"].get("path", "/"), **common)
    if "tcpSocket" in spec:
        port = spec["tcpSocket"]["port"]
        return Probe("tcp", port=ports[port] if isinstance(port, str) else int(port), **common)
    if "exec" in spec:
        return Probe("exec", command=list(spec["exec"]["command"]), **common)
    raise RenderError(f"probe kind not supported: {sorted(spec)}")


def container(spec: dict[str, Any]) -> Container:
    ports = {p.get("name", str(p["containerPort"])): int(p["containerPort"]) for p in spec.get("ports") or []}
    mounts = [Mount(m["name"], m["mountPath"], bool(m.get("readOnly", False)), m.get("subPath", ""))
              for m in spec.get("volumeMounts") or []]
    return Container(
        name=spec["name"], image=spec.get("image", ""), command=[str(c) for c in spec.get("command") or []],
        args=[str(a) for a in spec.get("args") or []], env=list(spec.get("env") or []),
        working_dir=spec.get("workingDir", ""), ports=ports, mounts=mounts,
        readiness=_probe(spec.get("readinessProbe"), ports), liveness=_probe(spec.get("livenessProbe"), ports),
        startup=_probe(spec.get("startupProbe"), ports),
        read_only_root=bool((spec.get("securityContext") or {}).get("readOnlyRootFilesystem", False)),
    )


def pod_template(owner: str, template: dict[str, Any]) -> PodTemplate:
    spec = template["spec"]
    labels = dict(template.get("metadata", {}).get("labels") or {})
    security = spec.get("securityContext") or {}
    containers = [container(c) for c in spec["containers"]]
    first = (spec["containers"][0].get("securityContext") or {})
    user = int(first.get("runAsUser", security.get("runAsUser", 0)))
    group = int(first.get("runAsGroup", security.get("runAsGroup", user)))
    if security.get("runAsNonRoot", first.get("runAsNonRoot")) and user == 0:
        raise RenderError(f"{owner}: runAsNonRoot without a runAsUser (the image's USER would decide)")
    return PodTemplate(
        owner=owner, component=labels.get("app.kubernetes.io/component", owner.split("/")[-1]), labels=labels,
        run_as_user=user, run_as_group=group, fs_group=security.get("fsGroup"),
        init_containers=[container(c) for c in spec.get("initContainers") or []], containers=containers,
        volumes={v["name"]: v for v in spec.get("volumes") or []},
        restart_policy=spec.get("restartPolicy", "Always"),
        pull_secrets=[s["name"] for s in spec.get("imagePullSecrets") or []],
    )


def workloads(render: Render) -> list[Workload]:
    """Deployments, StatefulSets and Jobs of the render, in Helm's install order."""
    found = []
    for obj in install_order(render.objects):
        kind, meta = obj["kind"], obj["metadata"]
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        template = pod_template(f"{kind}/{meta['name']}", obj["spec"]["template"])
        if kind == "StatefulSet":
            for claim in obj["spec"].get("volumeClaimTemplates") or []:
                template.volumes[claim["metadata"]["name"]] = {
                    "name": claim["metadata"]["name"], "persistentVolumeClaim": {
                        "claimName": f"{claim['metadata']['name']}-{meta['name']}-0"}}
        replicas = 1 if kind == "Job" else int(obj["spec"].get("replicas", 1))
        found.append(Workload(kind, meta["name"], replicas, template,
                              hook=(meta.get("annotations") or {}).get("helm.sh/hook", ""),
                              backoff_limit=int(obj["spec"].get("backoffLimit", 6))))
    return found


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _REF.sub(sub, text)


def resolve_env(entries: list[dict[str, Any]], render: Render, fields: dict[str, str],
                base: dict[str, str] | None = None) -> dict[str, str]:
    """A container's environment as the kubelet builds it; a missing Secret/ConfigMap key raises
    (the kubelet's CreateContainerConfigError) unless the reference is optional."""
    env = dict(base or {})
    for entry in entries:
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
            store = render.secrets if "secretKeyRef" in source else render.configmaps
            value = store.get(ref["name"], {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                what = "secret" if "secretKeyRef" in source else "configmap"
                raise RenderError(f"CreateContainerConfigError: {what} {ref['name']!r} has no key {ref['key']!r} "
                                  f"(env {name})")
            env[name] = value
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise RenderError(f"env {name}: fieldRef {path} not supported by the rehearsal")
            env[name] = fields[path]
        else:
            env[name] = ""
    return env
