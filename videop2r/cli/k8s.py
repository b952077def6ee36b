"""`videop2r submit JOB.yaml` and `videop2r jobs list|status|logs|stop`: RayJobs on Kubernetes."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

EXIT_FAILED, EXIT_USAGE = 1, 2


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", default=None,
                        help="namespace (default: the manifest's, else the kubeconfig context's, else 'default')")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")


def _jobs_api(args: argparse.Namespace, namespace: str | None = None):
    from videop2r.k8s.connection import connect
    from videop2r.k8s.rayjobs import RayJobs

    return RayJobs(connect(args.kubeconfig, args.context), namespace or args.namespace)


def _submit(args: argparse.Namespace) -> int:
    import yaml

    from videop2r.k8s.connection import KubernetesError
    from videop2r.k8s.manifest import ManifestError, append_overrides, apply_set, check_rayjob, load_rayjob

    try:
        job = load_rayjob(args.manifest)
        for assignment in args.set:
            apply_set(job, assignment)
        append_overrides(job, args.override)
    except ManifestError as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problems = check_rayjob(job)
    if problems:
        print(f"submit: {args.manifest} would be refused by KubeRay:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    namespace = args.namespace or (job.get("metadata") or {}).get("namespace")
    if args.dry_run:
        if namespace:
            job["metadata"]["namespace"] = namespace
        print(yaml.safe_dump(job, sort_keys=False), end="")
        return 0
    try:
        jobs = _jobs_api(args, namespace)
        if not _complete_from_cluster(jobs, job):
            return EXIT_USAGE
        created = jobs.submit(job)
        name = created["metadata"]["name"]
        print(f"rayjob/{name} created in namespace {jobs.namespace}")
        if not args.wait:
            print(f"  follow it: videop2r jobs logs {name} -n {jobs.namespace} --follow")
            return 0
        status = jobs.wait(name, timeout_s=args.timeout, poll_s=args.poll,
                           on_change=lambda s: print(f"rayjob/{name}: {s.summary()}", file=sys.stderr))
    except KubernetesError as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"rayjob/{name} finished: {status.summary()}")
    return 0 if status.ok else EXIT_FAILED


def _complete_from_cluster(jobs, job: dict[str, Any]) -> bool:
    """Check the selected RayCluster exists and give the submitter its image and pull secrets."""
    from videop2r.k8s.submitter import SubmitterError, fill_submitter, selected_cluster

    name = selected_cluster(job)
    if name is None:
        return True
    cluster = jobs.cluster(name)
    if cluster is None:
        present = jobs.cluster_names()
        print(f"submit: spec.clusterSelector ray.io/cluster={name} matches no RayCluster in namespace "
              f"{jobs.namespace} (there: {', '.join(present) or 'none'}); install the chart there, or "
              "--set 'spec.clusterSelector.ray\\.io/cluster=<name>'", file=sys.stderr)
        return False
    try:
        filled = fill_submitter(job, cluster)
    except SubmitterError as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return False
    if filled:
        print(f"submitter from RayCluster {name}: {', '.join(filled)}")
    return True


def _age(timestamp: str) -> str:
    if not timestamp:
        return "-"
    try:
        started = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = int((datetime.now(timezone.utc) - started).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _row(job: dict[str, Any]) -> dict[str, str]:
    from videop2r.k8s.status import status_of

    status = status_of(job)
    meta = job.get("metadata") or {}
    selector = ((job.get("spec") or {}).get("clusterSelector") or {}).get("ray.io/cluster", "")
    return {
        "NAMESPACE": meta.get("namespace", ""), "NAME": meta.get("name", ""),
        "JOB STATUS": status.job_status or "-", "DEPLOYMENT": status.deployment_status or "New",
        "CLUSTER": status.cluster or selector or "-", "AGE": _age(meta.get("creationTimestamp", "")),
    }


def _print_table(rows: list[dict[str, str]], columns: list[str]) -> None:
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def _list(args: argparse.Namespace) -> int:
    from videop2r.k8s.connection import KubernetesError

    try:
        items = _jobs_api(args).list(all_namespaces=args.all_namespaces, selector=args.selector)
    except KubernetesError as exc:
        print(f"jobs list: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no RayJobs found", file=sys.stderr)
        return 0
    columns = ["NAME", "JOB STATUS", "DEPLOYMENT", "CLUSTER", "AGE"]
    _print_table([_row(job) for job in items], (["NAMESPACE"] if args.all_namespaces else []) + columns)
    return 0


def _status(args: argparse.Namespace) -> int:
    from videop2r.k8s.connection import KubernetesError
    from videop2r.k8s.status import status_of

    try:
        job = _jobs_api(args).get(args.name)
    except KubernetesError as exc:
        print(f"jobs status: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "json":
        print(json.dumps(job.get("status") or {}, indent=2))
        return 0
    status = status_of(job)
    spec = job.get("spec") or {}
    fields = [
        ("Name", job["metadata"]["name"]), ("Namespace", job["metadata"].get("namespace", "")),
        ("Deployment status", status.deployment_status or "New"), ("Job status", status.job_status or "-"),
        ("Reason", status.reason), ("Message", status.message), ("Ray job id", status.job_id),
        ("RayCluster", status.cluster or (spec.get("clusterSelector") or {}).get("ray.io/cluster", "")),
        ("Dashboard", status.dashboard_url), ("Started", status.start_time), ("Ended", status.end_time),
        ("Entrypoint", spec.get("entrypoint", "")),
    ]
    for label, value in fields:
        if value:
            print(f"{label + ':':<19}{value}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from videop2r.k8s.connection import KubernetesError

    try:
        for line in _jobs_api(args).logs(args.name, follow=args.follow, tail_lines=args.tail):
            print(line, flush=args.follow)
    except KubernetesError as exc:
        print(f"jobs logs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _stop(args: argparse.Namespace) -> int:
    from videop2r.k8s.connection import KubernetesError

    try:
        jobs = _jobs_api(args)
        jobs.stop(args.name)
    except KubernetesError as exc:
        print(f"jobs stop: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"rayjob/{args.name} deleted from namespace {jobs.namespace}: KubeRay stops its Ray job "
          "(the RayCluster stays)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser(
        "submit", help="submit a RayJob manifest (jobs/*.yaml) to Kubernetes",
        description="Create a RayJob from a manifest (jobs/pa-grpo.yaml, ...) through the Kubernetes API. "
                    "Credentials: --kubeconfig, $KUBECONFIG, ~/.kube/config, else the pod's service account.")
    submit.add_argument("manifest", help="RayJob YAML (apiVersion ray.io/v1)")
    _add_cluster_arguments(submit)
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="edit the manifest, helm-style: spec.activeDeadlineSeconds=3600, "
                             "metadata.name=run1, spec.clusterSelector.ray\\.io/cluster=prod (repeatable)")
    submit.add_argument("--override", action="append", default=[], metavar="A.B=C",
                        help="config override appended to the entrypoint, e.g. trainer.total_steps=50 (repeatable)")
    submit.add_argument("--wait", action="store_true", help="wait until the job finishes; exit 0 iff it succeeded")
    submit.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    submit.add_argument("--poll", type=float, default=10.0, help="with --wait: seconds between status checks")
    submit.add_argument("--dry-run", action="store_true", help="print the final manifest, send nothing")
    submit.set_defaults(handler=_submit)

    jobs = subparsers.add_parser("jobs", help="list, inspect, read logs of and stop RayJobs")
    area = jobs.add_subparsers(dest="jobs_command", required=True, metavar="SUBCOMMAND")
    listing = area.add_parser("list", help="RayJobs and their states")
    _add_cluster_arguments(listing)
    listing.add_argument("--all-namespaces", "-A", action="store_true", help="every namespace")
    listing.add_argument("--selector", "-l", default=None, help="label selector, e.g. app.kubernetes.io/part-of=videop2r")
    listing.add_argument("--output", "-o", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)
    status = area.add_parser("status", help="one RayJob's state, reason, cluster and dashboard")
    status.add_argument("name")
    _add_cluster_arguments(status)
    status.add_argument("--output", "-o", choices=("text", "json"), default="text")
    status.set_defaults(handler=_status)
    logs = area.add_parser("logs", help="the driver's output (the submitter pod's log)")
    logs.add_argument("name")
    _add_cluster_arguments(logs)
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    logs.add_argument("--tail", type=int, default=None, help="only the last N lines")
    logs.set_defaults(handler=_logs)
    stop = area.add_parser("stop", help="delete a RayJob; KubeRay stops its Ray job (the RayCluster stays)")
    stop.add_argument("name")
    _add_cluster_arguments(stop)
    stop.set_defaults(handler=_stop)
