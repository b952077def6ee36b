"""The rehearsal's translations, each against the system it stands for.

- KubeRay (ray-project/kuberay @ feeaf72, ray-operator/controllers/ray/common/pod.go and job.go):
  the `ray start` line from rayStartParams and resources, the submitter's shell command.
- NetworkPolicy (networking.k8s.io/v1 semantics): isolation, peers, ports, policyTypes.
- Kubernetes env: Secret/ConfigMap refs, `$(VAR)` expansion, a missing key is an error.
- SGLang's launch_server arguments → the embedded server, unknown ones refused.
- Cluster DNS: A records, NXDOMAIN, the kubelet's resolv.conf.
"""

from __future__ import annotations

import argparse
import socket
import struct

import pytest

from infra.rehearsal import dns, kuberay, netpol
from infra.rehearsal.render import Render, RenderError, expand, resolve_env
from infra.rehearsal.substitutes import sglang_to_embedded
from services.rollout.main import add_arguments


def test_ray_start_matches_kuberay_generate_ray_start_command() -> None:
    head = kuberay.ray_start_command("head", {"num-cpus": "2", "dashboard-host": "0.0.0.0"},
                                     {"limits": {"cpu": "2", "memory": "4Gi"}}, "x:6379")
    # sorted keys, " --key=value " each, "block" as a bare flag, memory from the limit in bytes
    assert head == ("ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0 "
                    " --memory=4294967296  --metrics-export-port=8080  --num-cpus=2 ")
    worker = kuberay.ray_start_command("worker", {"log-color": "false", "include-dashboard": "true"},
                                       {"requests": {"cpu": "500m"}, "limits": {"nvidia.com/gpu": "8"}},
                                       "svc.ml.svc.cluster.local:6379")
    assert "--address=svc.ml.svc.cluster.local:6379" in worker
    assert "--num-cpus=1" in worker            # Quantity.Value() rounds 500m up
    assert "--num-gpus=8" in worker
    assert "--log-color=false" in worker and "--include-dashboard=true" in worker  # kept: special options
    assert "--dashboard-host" not in worker


def test_ray_pods_use_generated_command_probes_and_env() -> None:
    container = {"name": "ray-head", "image": "img", "resources": {"limits": {"cpu": "2"}},
                 "ports": [{"name": "dashboard", "containerPort": 8265}], "securityContext": {"runAsUser": 1000}}
    cluster = {"metadata": {"name": "videop2r"}, "spec": {
        "rayVersion": "2.60.0",
        "headGroupSpec": {"rayStartParams": {}, "template": {"metadata": {"labels": {"app.kubernetes.io/component": "ray-head"}},
                                                             "spec": {"containers": [container]}}},
        "workerGroupSpecs": [{"groupName": "learner", "replicas": 2, "rayStartParams": {},
                              "template": {"spec": {"containers": [dict(container, name="w")]}}}]}}
    head, worker = kuberay.ray_pods(cluster)
    assert head.template.containers[0].command == ["/bin/bash", "-c", "--"]
    assert head.template.containers[0].args[0].startswith("ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start --head")
    assert head.template.containers[0].readiness.path == "/api/healthz"
    assert head.template.containers[0].readiness.port == 52365
    assert head.template.labels["ray.io/node-type"] == "head"
    env = {e["name"]: e["value"] for e in worker.template.containers[0].env}
    assert env["RAY_ADDRESS"] == "videop2r-head-svc.ml.svc.cluster.local:6379"
    assert env["FQ_RAY_IP"] == "videop2r-head-svc.ml.svc.cluster.local"
    assert worker.replicas == 2
    wait = worker.template.init_containers[0]
    assert wait.name == "wait-gcs-ready" and "ray health-check --address videop2r-head-svc.ml.svc.cluster.local:6379" in wait.args[0]
    assert not head.template.init_containers
    assert any(m.path == "/dev/shm" for m in worker.template.containers[0].mounts)
    svc = kuberay.head_service(cluster)
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in svc["spec"]["ports"]} >= {6379, 8265, 10001, 8080}


def test_submitter_follows_kubejob_mode_and_refuses_unknown_cluster() -> None:
    job = {"metadata": {"generateName": "videop2r-pa-grpo-"}, "spec": {
        "clusterSelector": {"ray.io/cluster": "videop2r"}, "entrypoint": " videop2r train x=1 ",
        "entrypointNumCpus": 1, "submitterPodTemplate": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "ray-job-submitter", "image": "img"}]}}, "submitterConfig": {"backoffLimit": 3}}}
    workload, job_id = kuberay.submitter(job, "videop2r")
    c = workload.template.containers[0]
    assert c.command == ["/bin/bash", "-ce", "--"]
    script = c.args[0]
    assert script.startswith("until python -c")
    assert f"ray job submit --address http://videop2r-head-svc.ml.svc.cluster.local:8265 --no-wait --submission-id {job_id}" in script
    assert "--entrypoint-num-cpus 1.000000 -- videop2r train x=1 ; fi ; ray job logs" in script
    assert workload.backoff_limit == 3
    with pytest.raises(RenderError, match="matches no RayCluster"):
        kuberay.submitter(job, "other")


def _ep(name: str, ip: str, labels: dict, namespace: str = "ml", ports: dict | None = None) -> netpol.Endpoint:
    return netpol.Endpoint(name, f"rh-{name}", ip, namespace, labels, ports or {"http": 8000})


def test_networkpolicy_ingress_isolation_peers_and_named_ports() -> None:
    rollout = _ep("rollout", "10.243.0.10", {"app": "rollout"}, ports={"http": 30000})
    ray = _ep("ray", "10.243.0.11", {"app": "ray"})
    mon = _ep("prom", "10.243.0.12", {"app": "prom"}, namespace="monitoring")
    other = _ep("other", "10.243.0.13", {"app": "other"})
    policy = {"metadata": {"name": "p", "namespace": "ml"}, "spec": {
        "podSelector": {"matchLabels": {"app": "rollout"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["ray"]}]}}],
                     "ports": [{"port": "http", "protocol": "TCP"}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                     "ports": [{"port": 30000}]}]}}
    pods = [rollout, ray, mon, other]
    text = netpol.ruleset(rollout, [policy], pods)
    assert "ip saddr { 10.243.0.11 } tcp dport 30000 accept" in text
    assert "ip saddr { 10.243.0.12 } tcp dport 30000 accept" in text
    assert "10.243.0.13" not in text
    assert "    drop" in text.split("chain output")[0]
    # a pod no policy selects stays open both ways; egress is never isolated by an Ingress policy
    assert "drop" not in netpol.ruleset(other, [policy], pods)
    assert "drop" not in text.split("chain output")[1]


def test_networkpolicy_empty_from_and_egress_default_deny() -> None:
    a, b = _ep("a", "10.243.0.10", {"app": "a"}), _ep("b", "10.243.0.11", {"app": "b"})
    allow_all = {"metadata": {"name": "x", "namespace": "ml"}, "spec": {"podSelector": {}, "ingress": [{}]}}
    text = netpol.ruleset(a, [allow_all], [a, b])
    assert "    accept\n    drop" in text  # one rule that accepts everything, then the default deny
    deny_egress = {"metadata": {"name": "y", "namespace": "ml"}, "spec": {"podSelector": {"matchLabels": {"app": "a"}},
                                                                          "policyTypes": ["Egress"]}}
    out = netpol.ruleset(a, [deny_egress], [a, b]).split("chain output")[1]
    assert "drop" in out and "10.243.0.11" not in out
    other_ns = {"metadata": {"name": "z", "namespace": "other"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert "drop" not in netpol.ruleset(a, [other_ns], [a, b])


def test_env_resolution_like_the_kubelet() -> None:
    render = Render([], {"cm": {"k": "from-cm"}}, {"sec": {"key": "s3cr3t"}})
    env = resolve_env([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$$(A)-$(MISSING)"},
                       {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "key"}}},
                       {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                       {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                       {"name": "O", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope", "optional": True}}}],
                      render, {"status.podIP": "10.243.0.9"})
    assert env == {"A": "x", "B": "x-$(A)-$(MISSING)", "S": "s3cr3t", "C": "from-cm", "P": "10.243.0.9"}
    with pytest.raises(RenderError, match="CreateContainerConfigError"):
        resolve_env([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope"}}}], render, {})
    assert expand("$(A)$(A)", {"A": "1"}) == "11"


def test_sglang_arguments_translate_or_are_refused() -> None:
    """The embedded server parses SGLang's launch arguments itself: what sglang/srt/server_args.py of
    0.5.23 accepts (GPU-only ones included, e.g. --chunked-prefill-size) it accepts, an unknown flag it
    refuses (argparse exits 2, as SGLang's does); the rehearsal adds only the one-device rule."""
    args = ["--model-path", "/models/model", "--served-model-name", "policy", "--host", "0.0.0.0", "--port", "30000",
            "--tp-size", "1", "--mem-fraction-static", "0.8", "--device", "cpu", "--enable-metrics",
            "--chunked-prefill-size", "8192"]
    command = sglang_to_embedded(args)
    assert command == ["videop2r", "serve", "rollout", *args]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = parser.parse_args(command[3:])
    assert (parsed.model, parsed.port, parsed.device, parsed.served_model_name) == ("/models/model", 30000, "cpu", "policy")
    with pytest.raises(SystemExit):
        parser.parse_args([*command[3:], "--no-such-sglang-flag"])
    with pytest.raises(RenderError, match="tp-size 2"):
        sglang_to_embedded(["--tp-size", "2"])


def _query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def test_dns_answers_service_names_and_nxdomain() -> None:
    table = {"svc.ml.svc.cluster.local": ["10.243.0.5", "10.243.0.6"]}
    reply = dns.answer(_query("SVC.ml.svc.cluster.local"), lambda n: table.get(n, []))
    ident, flags, _, count = struct.unpack("!HHHH", reply[:8])
    assert (ident, flags & 0xF, count) == (0x1234, 0, 2)
    assert socket.inet_aton("10.243.0.5") in reply and socket.inet_aton("10.243.0.6") in reply
    missing = dns.answer(_query("nope.ml.svc.cluster.local"), lambda n: table.get(n, []))
    assert struct.unpack("!HH", missing[:4])[1] & 0xF == 3
    aaaa = dns.answer(_query("svc.ml.svc.cluster.local", qtype=28), lambda n: table.get(n, []))
    assert struct.unpack("!HHHH", aaaa[:8])[3] == 0 and struct.unpack("!HH", aaaa[:4])[1] & 0xF == 0
    assert dns.answer(b"\0" * 5, lambda n: []) is None
    assert dns.resolv_conf("10.243.0.1", "ml").splitlines() == [
        "search ml.svc.cluster.local svc.cluster.local cluster.local", "nameserver 10.243.0.1", "options ndots:5"]
