"""The flow matrix: from every pod (one per component) to every Service port, connected or not.

A TCP connect from inside the source pod's namespace to a ready backend's address: `allowed` is
whether the network lets it through — a connection, or a refusal from the pod itself (nothing
listening there at that moment, e.g. the driver's /metrics port between jobs) — versus a drop. `expected`: True = the system needs this flow, False = it
must be closed (a pod that has no business there), None = not judged (allowed or not, nothing
breaks and nothing leaks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from infra.rehearsal.cluster import Cluster

RAY = ("ray-head", "ray-learner")
SCRAPER = "prometheus"    # a pod in namespace `monitoring`, as kube-prometheus-stack's
OUTSIDER = "outsider"     # any other workload of the cluster (namespace `default`)

# (source component, destination component, port) the system needs.
NEEDED = {
    *{(src, dst, port) for src in RAY for dst, port in (("rollout", 30000), ("reward-accuracy", 8000),
                                                        ("reward-judge", 8000), ("minio", 9000))},
    ("ray-learner", "ray-head", 6379),     # workers join the GCS
    ("job-submitter", "ray-head", 8265),   # `ray job submit` / `ray job logs`
    ("rollout", "minio", 9000),            # the model download init container
    ("minio-buckets", "minio", 9000),
    (SCRAPER, "rollout", 30000), (SCRAPER, "reward-accuracy", 8000), (SCRAPER, "reward-judge", 8000),
    (SCRAPER, "ray-head", 9400),           # the driver's /metrics (PodMonitor)
}
# Ports no pod outside the Ray cluster and its submitter may reach: the head's job submission
# (runs code with the S3 keys and reward token in its environment), GCS and Ray client.
RAY_HEAD_PRIVATE = (8265, 6379, 10001)


def expectation(src: str, dst: str, port: int) -> bool | None:
    if (src, dst, port) in NEEDED:
        return True
    if src == OUTSIDER:
        return False
    if dst == "ray-head" and port in RAY_HEAD_PRIVATE:
        return True if src in RAY else (None if src == "job-submitter" else False)
    if dst in ("rollout", "reward-accuracy", "reward-judge", "minio") and src not in RAY:
        if src == SCRAPER:
            return None
        return False
    return None


PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def connect(target):
    s = socket.socket(); s.settimeout(1.5)
    try:
        s.connect((target[0], target[1])); return True
    except ConnectionRefusedError:
        return True     # the packet got through (RST from the pod): open as far as the network goes
    except OSError:
        return False    # dropped on the way (timeout) or unreachable
    finally:
        s.close()

targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
    print(json.dumps(list(pool.map(connect, targets))))
"""


def matrix(cluster: Cluster) -> list[dict[str, Any]]:
    """`network_flows` of the report; also counts the Ray head's private ports (no Service of its own)."""
    targets = []   # (service name, component, ip, port)
    for svc in cluster.services:
        backends = cluster.service_backends(svc)
        if not backends:
            continue
        backend = sorted(backends, key=lambda p: p.name)[0]
        ports = {k: v for c in backend.template.containers for k, v in c.ports.items()}
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            number = ports.get(target, target) if isinstance(target, str) else int(target)
            targets.append((svc["metadata"]["name"], backend.component, backend.ip, int(number)))
    sources: dict[str, Any] = {}
    for pod in sorted(cluster.pods.values(), key=lambda p: p.name):
        if pod.phase == "Running":
            sources.setdefault(pod.component, pod)
    flows = []
    runs = {}
    for component, pod in sources.items():  # every source at once: a dropped flow costs its timeout once
        wanted = [(ip, port) for _, dst, ip, port in targets if dst != component]
        if wanted:
            runs[component] = (pod, subprocess.Popen(["ip", "netns", "exec", pod.ns, sys.executable, "-c", PROBE,
                                                      json.dumps(wanted)], stdout=subprocess.PIPE, text=True))
    for component, (pod, proc) in runs.items():
        out, _ = proc.communicate(timeout=120)
        results = json.loads(out) if proc.returncode == 0 else []
        checked = iter(results)
        for service, dst, _, port in targets:
            if dst == component:
                continue
            flows.append({"from": pod.name, "from_component": component, "to": f"{service}:{port}",
                          "to_component": dst, "port": port, "allowed": next(checked, False),
                          "expected": expectation(component, dst, port)})
    return flows


def shortfalls(flows: list[dict[str, Any]]) -> list[str]:
    out = []
    for f in flows:
        if f["expected"] is True and not f["allowed"]:
            out.append(f"flow {f['from_component']} → {f['to']} is needed but blocked")
        elif f["expected"] is False and f["allowed"]:
            out.append(f"flow {f['from_component']} → {f['to']} should be closed but is open")
    return out
