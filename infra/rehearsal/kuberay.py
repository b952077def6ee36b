"""What the KubeRay operator makes of the rendered RayCluster and a submitted RayJob.

Mirrors ray-project/kuberay at commit feeaf72 (the release whose CRDs infra/kuberay-crds vendors):
- ray-operator/controllers/ray/common/pod.go: BuildPod (the `ulimit -n ...; ray start ...` args under
  `/bin/bash -c --`), setMissingRayStartParams (address for workers, dashboard-host,
  metrics-export-port 8080, block, dashboard-agent-listen-port 52365), generateRayStartCommand
  (num-cpus/memory from the container's limits, else requests), convertParamMap (sorted keys,
  "true" → a bare flag, "false" dropped), setContainerEnvVars (RAY_ADDRESS, RAY_CLUSTER_NAME,
  FQ_RAY_IP on workers, ...), initLivenessAndReadinessProbe (Ray ≥ 2.53: HTTP /api/healthz on the
  dashboard agent port; readiness 10 s delay, 5 s period, 10 failures), addEmptyDir (/dev/shm);
- pod.go DefaultWorkerPodTemplate: the `wait-gcs-ready` init container of every worker
  (`ray health-check` against the head Service every 5 s);
- ray-operator/controllers/ray/utils/util.go: GenerateHeadServiceName (`<cluster>-head-svc`),
  FetchHeadServiceURL (`<svc>.<ns>.svc.cluster.local:<dashboard port>`);
- ray-operator/controllers/ray/common/job.go: BuildJobSubmitCommand (K8sJobMode: wait for
  /api/gcs_healthz, `ray job status` || `ray job submit --no-wait`, then `ray job logs --follow`);
- ray-operator/controllers/ray/rayjob_controller.go: configureSubmitterContainer (`/bin/bash -ce --`,
  PYTHONUNBUFFERED, RAY_DASHBOARD_ADDRESS, RAY_JOB_SUBMISSION_ID).
"""

from __future__ import annotations

import copy
import json
import math
import secrets
import shlex
from typing import Any

from infra.rehearsal.render import NAMESPACE, Mount, Probe, RenderError, Workload, pod_template

CLUSTER_DOMAIN = "cluster.local"
GCS_PORT, DASHBOARD_PORT, CLIENT_PORT, METRICS_PORT, AGENT_PORT = 6379, 8265, 10001, 8080, 52365


WAIT_GCS = """
SECONDS=0
while true; do
  if (( SECONDS <= 120 )); then
    if ray health-check --address %s > /dev/null 2>&1; then
      echo "GCS is ready."
      break
    fi
    echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."
  else
    if ray health-check --address %s; then
      echo "GCS is ready. Any error messages above can be safely ignored."
      break
    fi
    echo "$SECONDS seconds elapsed: Still waiting for GCS to be ready."
  fi
  sleep 5
done
"""


def parse_quantity(text: str | float) -> float:
    """A Kubernetes resource quantity (`2`, `500m`, `4Gi`, `1e3`) as a number."""
    text = str(text)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def head_service_name(cluster: str) -> str:
    return f"{cluster}-head-svc"


def fqdn(service: str, namespace: str = NAMESPACE) -> str:
    return f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"


def convert_param_map(params: dict[str, str]) -> str:
    flags = []
    for key in sorted(params):
        value = str(params[key])
        if value.lower() in ("true", "false") and key not in ("log-color", "include-dashboard", "include-log-monitor"):
            if value.lower() == "true":
                flags.append(f" --{key} ")
        else:
            flags.append(f" --{key}={value} ")
    return "".join(flags)


def ray_start_command(node: str, params: dict[str, str], resources: dict[str, Any], head_address: str) -> str:
    params = {k: str(v) for k, v in (params or {}).items()}
    if node == "worker":
        params.setdefault("address", head_address)
    else:
        params.setdefault("dashboard-host", "0.0.0.0")
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(AGENT_PORT))
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if "num-cpus" not in params:
        cpu = limits.get("cpu") or requests.get("cpu")
        if cpu and parse_quantity(cpu) > 0:
            params["num-cpus"] = str(math.ceil(parse_quantity(cpu)))  # Quantity.Value() rounds up
    if "memory" not in params and limits.get("memory"):
        params["memory"] = str(int(parse_quantity(limits["memory"])))
    if "num-gpus" not in params and limits.get("nvidia.com/gpu"):
        params["num-gpus"] = str(int(parse_quantity(limits["nvidia.com/gpu"])))
    return ("ray start --head " if node == "head" else "ray start ") + convert_param_map(params)


def _ray_probe(node: str, params: dict[str, str], readiness: bool) -> Probe:
    port = int(params.get("dashboard-agent-listen-port", AGENT_PORT))
    if readiness:
        return Probe("http", port=port, path="/api/healthz", initial_delay_s=10, period_s=5,
                     timeout_s=5 if node == "head" else 2, failure_threshold=10)
    return Probe("http", port=port, path="/api/healthz", initial_delay_s=30, period_s=5,
                 timeout_s=5 if node == "head" else 2, failure_threshold=120)


def ray_pods(cluster_obj: dict[str, Any]) -> list[Workload]:
    """Head and worker groups of a RayCluster as the operator builds their pods."""
    name = cluster_obj["metadata"]["name"]
    spec = cluster_obj["spec"]
    head_address = f"{fqdn(head_service_name(name))}:{GCS_PORT}"
    version = str(spec.get("rayVersion", "0"))
    if tuple(int(x) for x in version.split(".")[:2]) < (2, 53):
        raise RenderError(f"rayVersion {version}: the rehearsal builds only the HTTP probes of Ray >= 2.53")
    groups = [("head", "head", spec["headGroupSpec"], 1)]
    for group in spec.get("workerGroupSpecs") or []:
        groups.append(("worker", group["groupName"], group, int(group.get("replicas", 1))))
    out = []
    for node, group_name, group, replicas in groups:
        template = copy.deepcopy(group["template"])
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"ray.io/cluster": name, "ray.io/node-type": node, "ray.io/group": group_name})
        raw = template["spec"]["containers"][0]
        if node == "worker":  # DefaultWorkerPodTemplate: the wait-gcs-ready init container
            template["spec"].setdefault("initContainers", []).append({
                "name": "wait-gcs-ready", "image": raw.get("image", ""), "command": ["/bin/bash", "-c", "--"],
                "args": [WAIT_GCS % (head_address, head_address)], "securityContext": copy.deepcopy(raw.get("securityContext")),
                "env": copy.deepcopy(raw.get("env") or []) + [{"name": "FQ_RAY_IP", "value": fqdn(head_service_name(name))},
                                                              {"name": "RAY_IP", "value": head_service_name(name)}],
                "volumeMounts": copy.deepcopy(raw.get("volumeMounts") or [])})
        params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
        start = ray_start_command(node, params, raw.get("resources") or {}, head_address)
        prior = " ".join(raw.get("command") or []) + " ".join(raw.get("args") or [])
        generated = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; " + start
        if "ray start" not in prior:
            raw["command"] = ["/bin/bash", "-c", "--"]
            raw["args"] = [f"{prior} && {generated}" if prior else generated]
        env = raw.setdefault("env", [])
        names = {e["name"] for e in env}
        extra = [("RAY_CLUSTER_NAME", name), ("RAY_CLUSTER_NAMESPACE", NAMESPACE), ("KUBERAY_GEN_RAY_START_CMD", start),
                 ("RAY_PORT", str(GCS_PORT)),
                 ("RAY_ADDRESS", f"{'127.0.0.1' if node == 'head' else fqdn(head_service_name(name))}:{GCS_PORT}"),
                 ("RAY_USAGE_STATS_KUBERAY_IN_USE", "1"), ("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "1")]
        if node == "worker":
            extra += [("FQ_RAY_IP", fqdn(head_service_name(name))), ("RAY_IP", head_service_name(name))]
        else:
            extra += [("RAY_TIMEOUT_MS_TASK_WAIT_FOR_DEATH_INFO", "0"), ("RAY_GCS_SERVER_REQUEST_TIMEOUT_SECONDS", "5"),
                      ("RAY_SERVE_KV_TIMEOUT_S", "5")]
        env += [{"name": k, "value": v} for k, v in extra if k not in names or k.startswith(("FQ_", "RAY_IP"))]
        pod = pod_template(f"RayCluster/{name}/{group_name}", template)
        ray = pod.containers[0]
        if "plasma-directory" not in params and not any(m.path == "/dev/shm" for m in ray.mounts):
            ray.mounts.append(Mount("shared-mem", "/dev/shm"))
            pod.volumes["shared-mem"] = {"name": "shared-mem", "emptyDir": {"medium": "Memory"}}
        ray.readiness = ray.readiness or _ray_probe(node, params, True)
        ray.liveness = ray.liveness or _ray_probe(node, params, False)
        out.append(Workload("RayCluster", f"{name}-{group_name}", replicas, pod))
    return out


def head_service(cluster_obj: dict[str, Any]) -> dict[str, Any]:
    """The head Service the operator creates (service.go BuildServiceForHeadPod: headless,
    publishNotReadyAddresses — workers must reach the GCS before the head's probes pass)."""
    name = cluster_obj["metadata"]["name"]
    head = cluster_obj["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = [{"name": p.get("name", str(p["containerPort"])), "port": int(p["containerPort"])} for p in head.get("ports") or []]
    for default_name, port in (("gcs-server", GCS_PORT), ("dashboard", DASHBOARD_PORT), ("client", CLIENT_PORT),
                               ("metrics", METRICS_PORT)):
        if not any(p["name"] == default_name for p in ports):
            ports.append({"name": default_name, "port": port})
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": head_service_name(name), "namespace": NAMESPACE},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "ports": ports,
                     "selector": {"ray.io/cluster": name, "ray.io/node-type": "head"}}}


def submit_command(job: dict[str, Any], dashboard: str, job_id: str) -> str:
    spec = job["spec"]
    address = dashboard if dashboard.startswith("http://") else f"http://{dashboard}"
    health = ("python -c \"import urllib.request; r=urllib.request.urlopen('%s', timeout=%d); "
              "exit(0 if b'success' in r.read() else 1)\"" % (f"{address}/api/gcs_healthz", 10))
    cmd = ["until", health, ">/dev/null", "2>&1", ";", "do", "echo",
           json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {address} ..."), ";", "sleep", "2", ";", "done", ";",
           "if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then",
           "ray", "job", "submit", "--address", address, "--no-wait"]
    runtime_env = spec.get("runtimeEnvYAML")
    if runtime_env:
        import yaml

        cmd += ["--runtime-env-json", json.dumps(json.dumps(yaml.safe_load(runtime_env)))]
    if spec.get("metadata"):
        cmd += ["--metadata-json", json.dumps(json.dumps(spec["metadata"]))]
    cmd += ["--submission-id", job_id]
    if float(spec.get("entrypointNumCpus", 0) or 0) > 0:
        cmd += ["--entrypoint-num-cpus", f"{float(spec['entrypointNumCpus']):f}"]
    if float(spec.get("entrypointNumGpus", 0) or 0) > 0:
        cmd += ["--entrypoint-num-gpus", f"{float(spec['entrypointNumGpus']):f}"]
    if spec.get("entrypointResources"):
        cmd += ["--entrypoint-resources", json.dumps(spec["entrypointResources"])]
    cmd += ["--", spec["entrypoint"].strip(), ";", "fi", ";", "ray", "job", "logs", "--address", address, "--follow", job_id]
    return " ".join(cmd)


def submitter(job: dict[str, Any], cluster_name: str, dashboard_port: int = DASHBOARD_PORT) -> tuple[Workload, str]:
    """The submitter Job KubeRay creates for a K8sJobMode RayJob; returns it and the job id."""
    spec = job["spec"]
    if spec.get("submissionMode", "K8sJobMode") != "K8sJobMode":
        raise RenderError(f"submissionMode {spec.get('submissionMode')}: the rehearsal runs K8sJobMode only")
    selector = (spec.get("clusterSelector") or {}).get("ray.io/cluster")
    if selector != cluster_name:
        raise RenderError(f"RayJob clusterSelector ray.io/cluster={selector!r} matches no RayCluster "
                          f"(the chart's is {cluster_name!r}): KubeRay would wait forever")
    name = job["metadata"].get("name") or job["metadata"]["generateName"] + secrets.token_hex(3)[:5]
    job_id = f"{name}-{secrets.token_hex(4)}"
    template = copy.deepcopy(spec.get("submitterPodTemplate") or {"spec": {"containers": [
        {"name": "ray-job-submitter", "image": "", "resources": {}}], "restartPolicy": "Never"}})
    raw = template["spec"]["containers"][0]
    dashboard = f"{fqdn(head_service_name(cluster_name))}:{dashboard_port}"
    if not raw.get("command"):
        raw["command"] = ["/bin/bash", "-ce", "--"]
        raw["args"] = [submit_command(job, dashboard, job_id)]
    raw.setdefault("env", []).extend([{"name": "PYTHONUNBUFFERED", "value": "1"},
                                      {"name": "RAY_DASHBOARD_ADDRESS", "value": dashboard},
                                      {"name": "RAY_JOB_SUBMISSION_ID", "value": job_id}])
    template.setdefault("metadata", {}).setdefault("labels", {})
    pod = pod_template(f"Job/{name}", template)
    backoff = int((spec.get("submitterConfig") or {}).get("backoffLimit", 2))
    return Workload("Job", name, 1, pod, backoff_limit=backoff), job_id


def shell_words(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
