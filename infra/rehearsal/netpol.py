"""NetworkPolicies (networking.k8s.io/v1) as nftables rules inside each pod's namespace.

Semantics follow the API's documentation of NetworkPolicySpec: a pod is isolated for a direction
when at least one policy of its namespace selects it (podSelector) with that direction in
policyTypes (default: Ingress, plus Egress when the policy has egress rules); its allowed traffic
is then the union of those policies' rules. A rule's `from`/`to` peers: podSelector (the policy's
namespace), namespaceSelector (+ podSelector), ipBlock; a missing peer list = any peer, a missing
port list = any port; named ports resolve against the destination pod's container ports. Replies
of an allowed connection pass (conntrack). Traffic from the node (the kubelet's probes) passes, as
with the usual CNIs.

Rules use the pods' current addresses, so `Cluster` re-applies them whenever a pod comes or goes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from infra.rehearsal.netns import NODE_IP


@dataclass
class Endpoint:
    """What the policy engine needs of a pod."""

    name: str
    ns: str              # network namespace
    ip: str
    namespace: str       # Kubernetes namespace
    labels: dict[str, str]
    ports: dict[str, int]


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def _peer_ips(peer: dict[str, Any], policy_ns: str, pods: list[Endpoint]) -> list[str]:
    if "ipBlock" in peer:
        return [peer["ipBlock"]["cidr"]]  # `except` ranges: not used by the chart
    ns_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
    out = []
    for pod in pods:
        if ns_selector is not None:
            if not matches(ns_selector, namespace_labels(pod.namespace)):
                continue
        elif pod.namespace != policy_ns:
            continue
        if pod_selector is not None and not matches(pod_selector, pod.labels):
            continue
        out.append(pod.ip)
    return out


def _ports(ports: list[dict[str, Any]] | None, dest: Endpoint | None) -> list[tuple[str, str]]:
    """(protocol, nft port expression) pairs; [("", "")] = any port."""
    if not ports:
        return [("", "")]
    out = []
    for p in ports:
        proto = p.get("protocol", "TCP").lower()
        port = p.get("port")
        if port is None:
            out.append((proto, ""))
        elif isinstance(port, str) and not port.isdigit():
            if dest is not None and port in dest.ports:
                out.append((proto, str(dest.ports[port])))
        else:
            end = p.get("endPort")
            out.append((proto, f"{port}-{end}" if end else str(port)))
    return out


def _types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _rule(direction: str, ips: list[str], proto: str, port: str) -> str:
    addr = "saddr" if direction == "in" else "daddr"
    parts = [f"ip {addr} {{ {', '.join(sorted(set(ips)))} }}"] if ips else []
    if proto:
        parts.append(f"{proto} dport {port}" if port else f"meta l4proto {proto}")
    return " ".join(parts + ["accept"])


def ruleset(pod: Endpoint, policies: list[dict[str, Any]], pods: list[Endpoint]) -> str:
    """The `table inet rehearsal` of one pod."""
    chains = {"in": [], "out": []}
    isolated = {"in": False, "out": False}
    for policy in policies:
        meta, spec = policy["metadata"], policy["spec"]
        if meta.get("namespace", "ml") != pod.namespace or not matches(spec.get("podSelector") or {}, pod.labels):
            continue
        for kind, direction, key, peers_key in (("Ingress", "in", "ingress", "from"), ("Egress", "out", "egress", "to")):
            if kind not in _types(policy):
                continue
            isolated[direction] = True
            for rule in spec.get(key) or []:
                peers = rule.get(peers_key)
                if peers:
                    ips = [ip for peer in peers for ip in _peer_ips(peer, meta.get("namespace", "ml"), pods)]
                    if not ips:
                        continue
                else:
                    ips = []
                if direction == "in":
                    for proto, port in _ports(rule.get("ports"), pod):
                        chains["in"].append(_rule("in", ips, proto, port))
                else:
                    for dest_ip in ips or [""]:
                        dest = next((p for p in pods if p.ip == dest_ip), None)
                        for proto, port in _ports(rule.get("ports"), dest):
                            chains["out"].append(_rule("out", [dest_ip] if dest_ip else [], proto, port))
    lines = ["table inet rehearsal {"]
    for direction, hook, iface in (("in", "input", "iif"), ("out", "output", "oif")):
        lines += [f"  chain {hook} {{", f"    type filter hook {hook} priority 0; policy accept;",
                  "    ct state established,related accept", f"    {iface} lo accept",
                  f"    ip {'saddr' if direction == 'in' else 'daddr'} {NODE_IP} accept"]
        if isolated[direction]:
            lines += [f"    {r}" for r in chains[direction]] + ["    drop"]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply(pod: Endpoint, text: str) -> None:
    """Replace the pod's table atomically (one nft transaction)."""
    script = "table inet rehearsal {}\ndelete table inet rehearsal\n" + text
    done = subprocess.run(["ip", "netns", "exec", pod.ns, "nft", "-f", "-"], input=script, capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"nft in {pod.ns} ({pod.name}): {done.stderr.strip()}\n{text}")
