"""The one-machine cluster: pods in namespaces, Services as hosts entries, NetworkPolicies as nft.

Service names resolve as cluster DNS would for every pod: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`,
`<svc>.<ns>.svc.cluster.local` → the addresses of the *ready* pods the selector matches (a
headless Service's A records; a ClusterIP Service has one virtual IP in a cluster — here the
client gets the ready endpoints directly, so kube-proxy's load balancing is not rehearsed).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from infra.rehearsal import netpol
from infra.rehearsal.dns import DNSServer, resolv_conf
from infra.rehearsal.netns import NODE_IP, Network
from infra.rehearsal.pods import Kubelet, Pod
from infra.rehearsal.render import NAMESPACE, Render, Workload

log = logging.getLogger("rehearsal")

DOMAIN = "cluster.local"


class Cluster:
    def __init__(self, render: Render, images: dict[str, str], workdir: Path) -> None:
        self.render, self.workdir = render, workdir
        self.network = Network()
        self.kubelet = Kubelet(render, images, workdir / "pvc", self.refresh)
        self.pods: dict[str, Pod] = {}
        self.gone: list[Pod] = []
        self.services: list[dict[str, Any]] = [o for o in render.objects if o["kind"] == "Service"]
        self.policies: list[dict[str, Any]] = [o for o in render.objects if o["kind"] == "NetworkPolicy"]
        self.workloads: dict[str, Workload] = {}
        self.lock = threading.RLock()
        self.records: dict[str, list[str]] = {}
        self.dns: DNSServer | None = None
        self.applied_rules: dict[str, str] = {}  # pod netns → the nft text last applied there

    def up(self) -> None:
        self.network.up()
        self.dns = DNSServer(NODE_IP, self.resolve)

    def resolve(self, name: str) -> list[str]:
        with self.lock:
            return list(self.records.get(name.rstrip("."), []))

    # ------------------------------------------------------------------ pods
    def pod_name(self, workload: Workload, index: int) -> str:
        if workload.kind == "StatefulSet":
            return f"{workload.name}-{index}"
        return f"{workload.name}-{secrets.token_hex(3)[:5]}"

    def create_pod(self, workload: Workload, index: int = 0, namespace: str = NAMESPACE) -> Pod:
        with self.lock:
            name = self.pod_name(workload, index)
            ip = self.network.allocate()
            ns = self.network.add_pod(ip, resolv_conf(NODE_IP, namespace))
            folder = self.workdir / "pods" / name
            folder.mkdir(parents=True, exist_ok=True)
            pod = Pod(name, workload.template, ip, ns, folder, job=workload.kind == "Job",
                      backoff_limit=workload.backoff_limit)
            pod.namespace = namespace  # type: ignore[attr-defined]
            self.pods[name] = pod
            self.workloads[name] = workload
        self.refresh()
        self.kubelet.start(pod)
        return pod

    def start_workload(self, workload: Workload) -> list[Pod]:
        return [self.create_pod(workload, i) for i in range(workload.replicas)]

    def delete_pod(self, name: str, grace_s: float = 10.0) -> Pod:
        pod = self.pods.pop(name)
        self.kubelet.stop(pod, grace_s=grace_s)
        self.network.remove_pod(pod.ns)
        self.gone.append(pod)
        self.refresh()
        return pod

    def reschedule(self, name: str) -> Pod:
        """What a ReplicaSet does when its pod dies: a new pod (new name, namespace, address)."""
        workload = self.workloads[name]
        self.delete_pod(name, grace_s=0.5)
        return self.create_pod(workload)

    def of_component(self, component: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.component == component]

    def endpoints(self) -> list[netpol.Endpoint]:
        return [netpol.Endpoint(p.name, p.ns, p.ip, getattr(p, "namespace", NAMESPACE), p.labels,
                                {k: v for c in p.template.containers for k, v in c.ports.items()})
                for p in self.pods.values()]

    # ------------------------------------------------------------------ DNS + policies
    def service_backends(self, service: dict[str, Any], ready_only: bool = True) -> list[Pod]:
        selector = service["spec"].get("selector") or {}
        if not selector:
            return []
        if service["spec"].get("publishNotReadyAddresses"):
            ready_only = False  # still only pods that have started their containers
        return [p for p in self.pods.values()
                if getattr(p, "namespace", NAMESPACE) == service["metadata"].get("namespace", NAMESPACE)
                and all(p.labels.get(k) == v for k, v in selector.items())
                and (p.ready or (not ready_only and p.phase == "Running"))]

    def hosts_body(self) -> str:
        lines = []
        records: dict[str, list[str]] = {}
        for svc in self.services:
            name, ns = svc["metadata"]["name"], svc["metadata"].get("namespace", NAMESPACE)
            for pod in sorted(self.service_backends(svc), key=lambda p: p.ip):
                lines.append(f"{pod.ip} {name}.{ns}.svc.{DOMAIN} {name}.{ns}.svc {name}.{ns} {name}")
                records.setdefault(f"{name}.{ns}.svc.{DOMAIN}", []).append(pod.ip)
        for pod in self.pods.values():  # a pod's own name, as its /etc/hosts has it
            records.setdefault(pod.name, []).append(pod.ip)
        self.records = records
        return "\n".join(lines) + ("\n" if lines else "")

    def refresh(self) -> None:
        """Rewrite every pod's hosts file and nft table from the current pods and readiness."""
        with self.lock:
            body = self.hosts_body()
            endpoints = self.endpoints()
            for pod, ep in zip(list(self.pods.values()), endpoints):
                self.network.write_hosts(pod.ns, body + f"{pod.ip} {pod.name}\n")
                # the rules follow addresses and labels, not readiness: re-applied only when they change
                rules = netpol.ruleset(ep, self.policies, endpoints)
                if self.applied_rules.get(pod.ns) != rules:
                    netpol.apply(ep, rules)
                    self.applied_rules[pod.ns] = rules

    # ------------------------------------------------------------------ waiting
    def wait(self, predicate, timeout_s: float, poll_s: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.write_status()
            time.sleep(poll_s)
        return predicate()

    def write_status(self) -> None:
        """runs/rehearsal/status.txt: every pod's phase, readiness and reason, for a person watching."""
        rows = [f"{p.name:40} {p.ip:13} {p.phase:10} ready={p.ready!s:5} restarts={p.restarts} {p.reason}"
                for p in sorted(list(self.pods.values()), key=lambda p: p.name)]
        (self.workdir / "status.txt").write_text("\n".join(rows) + "\n")

    def close(self, grace_s: float = 5.0) -> None:
        """Every pod at once: SIGTERM to all their processes, SIGKILL after `grace_s`."""
        from infra.rehearsal.netns import kill_all

        with self.kubelet.lock:
            self.kubelet.closed = True
        for name in list(self.pods):
            pod = self.pods.pop(name)
            pod.stop_event.set()
            self.gone.append(pod)
        kill_all([p.ns for p in self.gone], grace_s)
        # A supervisor may be inside a probe (its timeout) when stopped; mount points go only after
        # every one has returned, or a late start would leave one behind on the host.
        deadline = time.monotonic() + 30
        for pod in self.gone:
            if pod.thread is not None:
                pod.thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self.dns is not None:
            self.dns.close()
        self.network.close()
        for created in reversed(self.kubelet.created):  # deepest first
            try:
                created.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # something wrote to the host's copy of a mount point: say what
                leftover = sorted(str(p) for p in created.iterdir())[:5] if created.is_dir() else []
                log.warning("mount point %s stays on the host (%s): %s", created, exc.strerror, leftover)
