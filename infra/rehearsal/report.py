"""runs/rehearsal/report.json (the keys the issue names, nothing else) and report.md for people.

`build` also judges: every pod ready, all steps done, every rollout pod at the learner's weight
version, the checkpoint read back, every needed flow open and every closed port closed, every
fault recovered — each miss is appended to the rehearsal's shortfalls (non-zero exit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.rehearsal.flows import shortfalls as flow_shortfalls

KEYS = ("pods", "steps_completed", "rollout_weight_versions", "learner_weight_version", "checkpoint_uri",
        "checkpoint_in_store", "network_flows", "faults", "substitutes", "wall_s")


def build(rh: Any, flows: list[dict[str, Any]]) -> dict[str, Any]:
    cluster = rh.cluster
    pods = {}
    substitutes: dict[str, str] = {}
    if cluster is not None:
        for pod in list(cluster.pods.values()) + list(cluster.gone):
            for container, what in pod.substitutes.items():
                substitutes[f"{pod.component}/{container}"] = what
        for pod in sorted(cluster.pods.values(), key=lambda p: p.name):
            pods[pod.name] = {"ip": pod.ip, "ready": pod.ready or pod.phase == "Succeeded", "restarts": pod.restarts,
                              "component": pod.component, "phase": pod.phase, "reason": pod.reason}
    versions = rh.weight_versions() if cluster is not None else {}
    uri, in_store = rh.checkpoint() if cluster is not None else ("", False)
    for fault in rh.faults:  # back in rotation: ready, and a rollout pod at the learner's weights
        new = cluster.pods.get(fault.get("replacement", "")) if cluster is not None else None
        fault["recovered"] = bool(new is not None and new.ready and (
            fault["component"] != "rollout" or versions.get(new.name) == rh.learner_version != ""))
    report = {"pods": pods, "steps_completed": rh.steps_done, "rollout_weight_versions": versions,
              "learner_weight_version": rh.learner_version, "checkpoint_uri": uri, "checkpoint_in_store": in_store,
              "network_flows": flows, "faults": rh.faults, "substitutes": substitutes, "wall_s": 0.0}
    judge(report, rh)
    return report


def judge(report: dict[str, Any], rh: Any) -> None:
    short = rh.shortfalls
    for name, pod in report["pods"].items():
        if not pod["ready"] and pod["component"] not in ("job-submitter",):
            short.append(f"pod {name} not ready: {pod['phase']} {pod['reason']}")
    if report["steps_completed"] < rh.o.steps:
        short.append(f"{report['steps_completed']} of {rh.o.steps} PA-GRPO steps completed")
    learner = report["learner_weight_version"]
    if not learner:
        short.append("no learner weight version (no checkpoint driver state read back)")
    for pod, version in report["rollout_weight_versions"].items():
        if version != learner:
            short.append(f"rollout pod {pod} serves weight version {version!r}, the learner is at {learner!r}")
    if not report["rollout_weight_versions"]:
        short.append("no rollout pod to ask for its weight version")
    if not report["checkpoint_in_store"]:
        short.append(f"checkpoint not read back from the bucket ({report['checkpoint_uri'] or 'none found'})")
    if not report["network_flows"]:
        short.append("no network flow was checked")
    short.extend(flow_shortfalls(report["network_flows"]))
    for fault in report["faults"]:
        if not fault.get("recovered"):
            short.append(f"fault {fault['component']}@{fault['step']}: replacement {fault.get('replacement')} not back in rotation")


def write(report: dict[str, Any], rh: Any, workdir: Path, peak_rss_bytes: int) -> None:
    public = {k: report[k] for k in KEYS}
    public["pods"] = {n: {k: p[k] for k in ("ip", "ready", "restarts")} for n, p in report["pods"].items()}
    public["network_flows"] = [{k: f[k] for k in ("from", "to", "port", "allowed", "expected")}
                               for f in report["network_flows"]]
    public["faults"] = [{k: f.get(k) for k in ("component", "pod", "step", "recovered")} for f in report["faults"]]
    (workdir / "report.json").write_text(json.dumps(public, indent=2, sort_keys=False) + "\n")
    lines = ["# Cluster rehearsal", "",
             f"Result: **{'PASS' if not rh.shortfalls else 'FAIL'}** — {report['steps_completed']} of {rh.o.steps} "
             f"PA-GRPO steps, wall {report['wall_s']:.0f} s, peak memory of all pods {peak_rss_bytes / 2**30:.2f} GiB.", ""]
    if rh.shortfalls:
        lines += ["## Shortfalls", ""] + [f"- {s}" for s in rh.shortfalls] + [""]
    lines += ["## Pods", "", "| pod | component | ip | ready | restarts | phase |", "| --- | --- | --- | --- | --- | --- |"]
    for name, p in report["pods"].items():
        lines.append(f"| {name} | {p['component']} | {p['ip']} | {p['ready']} | {p['restarts']} | {p['phase']} {p['reason']} |")
    lines += ["", "## Weights and checkpoint", "",
              f"- learner weight version: {report['learner_weight_version'] or '—'}"]
    lines += [f"- {pod}: {v}" for pod, v in report["rollout_weight_versions"].items()]
    lines += [f"- checkpoint: {report['checkpoint_uri'] or '—'} (read back: {report['checkpoint_in_store']})", "",
              "## Network flows (per Service port)", "",
              "| from | to | allowed | expected |", "| --- | --- | --- | --- |"]
    for f in report["network_flows"]:
        mark = "" if f["expected"] is None or f["expected"] == f["allowed"] else " **✗**"
        expected = {True: "open", False: "closed", None: "—"}[f["expected"]]
        lines.append(f"| {f['from_component']} | {f['to']} ({f['to_component']}) | {f['allowed']} | {expected}{mark} |")
    lines += ["", "## Faults", ""]
    lines += [f"- {f['component']}@{f['step']}: killed {f['pod']}, rescheduled as {f.get('replacement')} "
              f"({f.get('replacement_ip')}), back in rotation: {f.get('recovered')}" for f in report["faults"]] or ["- none"]
    lines += ["", "## Substitutes", ""] + [f"- {k}: {v}" for k, v in report["substitutes"].items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in rh.notes]
    lines += ["", "Not rehearsed: GPU scheduling and NCCL, the real SGLang engine, real cluster DNS/CNI and",
              "kube-proxy (a Service name resolves to its ready pods' addresses), the Kubernetes API itself.", ""]
    (workdir / "report.md").write_text("\n".join(lines))
