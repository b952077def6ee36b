"""The rehearsal: `helm install` of the rendered chart, then `videop2r submit jobs/pa-grpo.yaml`.

Helm's order (pkg/action/install.go): pre-install hooks, then the resources in install order, then
— with `--wait` — every Deployment/StatefulSet ready before post-install hooks run; a wait that
cannot finish (a pod that waits on a post-install hook) is reported as a deadlock after
`wait_s`, and the rehearsal goes on as a plain `helm install` would, so the rest is still seen.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.rehearsal import flows, kuberay, user
from infra.rehearsal.cluster import Cluster
from infra.rehearsal.pods import Pod
from infra.rehearsal.render import (
    CHART,
    VALUES,
    Container,
    PodTemplate,
    Workload,
    helm_template,
    parse,
    workloads,
)
from infra.rehearsal.substitutes import chart_images

log = logging.getLogger("rehearsal")


@dataclass
class Options:
    steps: int = 3
    faults: list[tuple[str, int]] = field(default_factory=list)
    helm_wait: bool = True
    wait_s: float = 120.0
    ready_s: float = 420.0
    job_s: float = 720.0
    settle_s: float = 120.0
    sets: list[str] = field(default_factory=list)
    workdir: Path = Path("runs/rehearsal")
    cache: Path = Path("runs/rehearsal-cache")


def job_status(head_ip: str, job_id: str) -> dict[str, Any]:
    """The Ray job's status from the head's dashboard (what KubeRay's RayJob controller polls)."""
    try:
        with urllib.request.urlopen(f"http://{head_ip}:{kuberay.DASHBOARD_PORT}/api/jobs/{job_id}", timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return {}


def parse_faults(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        component, _, step = item.partition("@")
        if not component or not step.isdigit() or int(step) < 1:
            raise ValueError(f"REHEARSAL_FAULTS item {item!r}: expected COMPONENT@STEP (STEP >= 1)")
        out.append((component, int(step)))
    return out


def merged_values(sets: list[str]) -> dict[str, Any]:
    import yaml

    def merge(a: dict, b: dict) -> dict:
        for k, v in b.items():
            a[k] = merge(a.get(k) or {}, v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a
    values = merge(yaml.safe_load((CHART / "values.yaml").read_text()), yaml.safe_load(VALUES.read_text()))
    for item in sets:  # helm --set a.b=c (plain values; enough for image repositories and replicas)
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return values


def probe_pod(component: str) -> Workload:
    """A pod that only sleeps, labelled like `component` — the sources of the flow matrix."""
    c = Container(name=component, image="rehearsal/probe", command=["sleep", "infinity"], args=[], env=[],
                  working_dir="/", ports={}, mounts=[])
    template = PodTemplate(owner=f"Pod/{component}", component=component,
                           labels={"app.kubernetes.io/name": component, "app.kubernetes.io/component": component},
                           run_as_user=65534, run_as_group=65534, fs_group=None, init_containers=[],
                           containers=[c], volumes={})
    return Workload("Pod", component, 1, template)


class Rehearsal:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.shortfalls: list[str] = []
        self.notes: list[str] = []
        self.faults: list[dict[str, Any]] = []
        self.steps_done = 0
        self.started = time.monotonic()
        self.cluster: Cluster | None = None
        self.secret: dict[str, str] = {}
        self.config: dict[str, Any] = {}
        self.job_pod: Pod | None = None
        self.learner_version = ""
        self.flows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ install
    def install(self) -> None:
        render = parse(helm_template(VALUES, self.o.sets))
        images = chart_images(merged_values(self.o.sets))
        images["rehearsal/probe"] = "videop2r"
        self.cluster = cluster = Cluster(render, images, self.o.workdir.absolute())
        cluster.up()
        import yaml

        self.config = yaml.safe_load(render.configmaps["videop2r-config"]["videop2r.yaml"])
        self.secret = render.secrets.get("videop2r-s3", {})
        all_workloads = workloads(render)
        hooks = {w.name: w for w in all_workloads if w.hook}
        pre = [w for w in hooks.values() if "pre-install" in w.hook]
        post = [w for w in hooks.values() if "post-install" in w.hook]
        for w in pre:
            self.run_job(w, "pre-install hook")
        plain = [w for w in all_workloads if not w.hook]
        for w in plain:
            cluster.start_workload(w)
        for obj in render.of_kind("RayCluster"):  # the operator reacts to the applied CR
            cluster.services.append(kuberay.head_service(obj))
            for w in kuberay.ray_pods(obj):
                cluster.start_workload(w)
        for component, namespace in ((flows.SCRAPER, "monitoring"), (flows.OUTSIDER, "default")):
            cluster.create_pod(probe_pod(component), namespace=namespace)
        self.stage_user_data()
        waited = [n for n, p in cluster.pods.items() if cluster.workloads[n].kind in ("Deployment", "StatefulSet")]
        if self.o.helm_wait:
            ok = cluster.wait(lambda: all(cluster.pods[n].ready for n in waited if n in cluster.pods), self.o.wait_s)
            if not ok:
                stuck = [f"{n} ({cluster.pods[n].reason or cluster.pods[n].phase})" for n in waited
                         if n in cluster.pods and not cluster.pods[n].ready]
                self.shortfalls.append(
                    f"helm install --wait deadlock: after {self.o.wait_s:.0f}s not ready: {', '.join(stuck)}; "
                    f"post-install hooks not run yet: {', '.join(w.name for w in post) or 'none'} "
                    "(Helm runs them only after every resource is ready)")
                self.notes.append("continued as a plain `helm install` (hooks right after the resources)")
        for w in post:
            self.run_job(w, "post-install hook")

    def stage_user_data(self) -> None:
        """The user's upload, in the background: it lands as soon as the chart's bucket exists."""
        import threading

        assert self.cluster is not None
        items = user.artifacts(self.o.cache.absolute())
        storage = self.config.get("storage") or {}
        bucket = storage.get("uri", "s3://videop2r").removeprefix("s3://").split("/")[0]
        model = self.config.get("model", {}).get("path", "").removeprefix(f"s3://{bucket}/")
        data = self.config.get("data", {})
        prefixes = {model: items["model"], data.get("train_uri", "").removeprefix(f"s3://{bucket}/"): items["train"],
                    data.get("eval_uri", "").removeprefix(f"s3://{bucket}/"): items["eval"]}
        self.upload_error: str = ""

        def run() -> None:
            try:
                minio = self.wait_component_ready("minio", 300)
                counts = user.upload(f"{minio.ip}:9000", self.secret["AWS_ACCESS_KEY_ID"],
                                     self.secret["AWS_SECRET_ACCESS_KEY"], bucket, prefixes)
                self.notes.append(f"user upload to s3://{bucket}: " + ", ".join(f"{k} ({v} objects)" for k, v in counts.items()))
            except Exception as exc:  # noqa: BLE001 - reported as a shortfall
                self.upload_error = f"user upload failed: {exc}"
        self.uploader = threading.Thread(target=run, name="user-upload", daemon=True)
        self.uploader.start()

    def wait_component_ready(self, component: str, timeout_s: float) -> Pod:
        assert self.cluster is not None
        found: list[Pod] = []

        def ready() -> bool:
            found[:] = [p for p in self.cluster.of_component(component) if p.ready]
            return bool(found)
        if not self.cluster.wait(ready, timeout_s):
            raise TimeoutError(f"no ready {component} pod after {timeout_s:.0f}s")
        return found[0]

    def run_job(self, workload: Workload, what: str, timeout_s: float = 300) -> Pod:
        assert self.cluster is not None
        pod = self.cluster.create_pod(workload)
        self.cluster.wait(lambda: pod.phase in ("Succeeded", "Failed"), timeout_s)
        if pod.phase != "Succeeded":
            self.shortfalls.append(f"{what} {workload.name}: {pod.phase} {pod.reason}")
        return pod

    # ------------------------------------------------------------------ train
    def all_ready(self) -> bool:
        assert self.cluster is not None
        return all(p.ready for p in self.cluster.pods.values() if not p.job)

    def train(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        if not cluster.wait(self.all_ready, self.o.ready_s):
            stuck = [f"{p.name} ({p.reason or p.phase})" for p in cluster.pods.values() if not p.job and not p.ready]
            self.shortfalls.append(f"pods not ready after {self.o.ready_s:.0f}s: {', '.join(stuck)}")
            return
        if getattr(self, "upload_error", ""):
            self.shortfalls.append(self.upload_error)
            return
        ray_cluster = cluster.render.of_kind("RayCluster")[0]
        job = user.rayjob(self.o.steps, ray_cluster)
        submitter, job_id = kuberay.submitter(job, ray_cluster["metadata"]["name"])
        self.notes.append(f"RayJob {submitter.name}: submission id {job_id}, entrypoint {job['spec']['entrypoint']!r}")
        self.job_pod = pod = cluster.create_pod(submitter)
        head = cluster.of_component("ray-head")[0]
        pending = sorted(self.o.faults, key=lambda f: f[1])
        deadline = time.monotonic() + self.o.job_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and pod.phase not in ("Failed",):
            self.steps_done = self.read_steps()
            # a fault "at step N" lands once step N-1 is logged (step 1: once the driver has begun)
            while pending and self.steps_done >= pending[0][1] - 1 and (self.steps_done or self.driver_started()):
                self.inject(*pending.pop(0))
            if self.steps_done >= 1 and not self.flows:
                self.flows = flows.matrix(cluster)  # while the driver runs (its /metrics port is up)
            status = job_status(head.ip, job_id) or status
            cluster.write_status()
            if status.get("status") in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(1.0)
        self.steps_done = self.read_steps()
        if self.faults:  # a rescheduled pod may still be starting: give it the time a person would
            cluster.wait(self.all_ready, self.o.settle_s)
        if pod.phase == "Failed":
            self.shortfalls.append(f"RayJob submitter {pod.name}: {pod.reason}")
        elif status.get("status") != "SUCCEEDED":
            message = (status.get("message") or "").strip().splitlines()
            self.shortfalls.append(f"Ray job {job_id}: {status.get('status', 'not finished in time')}"
                                   + (f": {message[-1][:400]}" if message else ""))
        for component, step in pending:
            self.shortfalls.append(f"fault {component}@{step} never injected (the run stopped at step {self.steps_done})")
    def run_dirs(self) -> list[Path]:
        """The driver's run directories on each Ray pod: wherever under the pod's /tmp a
        `config-pa_grpo.yaml` is (the job may move trainer.output_dir with an override)."""
        assert self.cluster is not None
        found = []
        for pod in list(self.cluster.pods.values()):
            if pod.component.startswith("ray-"):
                tmp = pod.folder / "volumes" / "tmp"
                found += [p.parent for pattern in ("*/config-pa_grpo.yaml", "*/*/config-pa_grpo.yaml",
                                                   "*/*/*/config-pa_grpo.yaml")
                          for p in tmp.glob(pattern) if "ray" not in p.relative_to(tmp).parts[:1]]
        return found

    def driver_started(self) -> bool:
        return any((d / "config-pa_grpo.yaml").exists() for d in self.run_dirs())

    def read_steps(self) -> int:
        """Steps the driver logged (metrics.jsonl in its run directory, on whichever Ray pod it runs)."""
        best = 0
        for run_dir in self.run_dirs():
            path = run_dir / "metrics.jsonl"
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if row.get("stage") == "pa_grpo":
                    best = max(best, int(row.get("step", 0)))
        return best

    def inject(self, component: str, step: int) -> None:
        assert self.cluster is not None
        victims = sorted(self.cluster.of_component(component), key=lambda p: p.name)
        if not victims:
            self.shortfalls.append(f"fault {component}@{step}: no pod of component {component!r}")
            return
        old = victims[0]
        log.info("fault: killing %s (%s) before step %d", old.name, old.ip, step)
        new = self.cluster.reschedule(old.name)
        self.faults.append({"component": component, "pod": old.name, "step": step, "recovered": None,
                            "replacement": new.name, "replacement_ip": new.ip})

    # ------------------------------------------------------------------ results
    def weight_versions(self) -> dict[str, str]:
        assert self.cluster is not None
        out = {}
        for pod in self.cluster.of_component("rollout"):
            port = next(iter(pod.template.containers[0].ports.values()), 30000)
            try:
                with urllib.request.urlopen(f"http://{pod.ip}:{port}/get_weight_version", timeout=5) as r:
                    out[pod.name] = str(json.loads(r.read())["weight_version"])
            except (OSError, ValueError, KeyError) as exc:
                out[pod.name] = f"unreachable: {exc}"
        return out

    def checkpoint(self) -> tuple[str, bool]:
        """The newest complete checkpoint of the run, read back from the bucket with the project's code."""
        from videop2r.config import StorageConfig
        from videop2r.storage import open_store
        from videop2r.train.checkpoint import CheckpointStore

        assert self.cluster is not None
        storage = self.config.get("storage") or {}
        trainer = self.config.get("trainer") or {}
        minio = next((p for p in self.cluster.of_component("minio") if p.ready), None)
        if minio is None:
            return "", False
        os.environ.update(AWS_ACCESS_KEY_ID=self.secret.get("AWS_ACCESS_KEY_ID", ""),
                          AWS_SECRET_ACCESS_KEY=self.secret.get("AWS_SECRET_ACCESS_KEY", ""))
        store = open_store(storage["uri"], StorageConfig(uri=storage["uri"], endpoint=f"{minio.ip}:9000", secure=False))
        prefix = "/".join([trainer.get("checkpoint_prefix", "checkpoints"), trainer.get("run_name", "pa-grpo"), "pa_grpo"])
        try:
            ckpt = CheckpointStore(store, prefix).latest()
        except Exception as exc:  # noqa: BLE001 - reported
            self.notes.append(f"checkpoint read-back failed: {exc}")
            return "", False
        if ckpt is None:
            return "", False
        checkpoints = CheckpointStore(store, prefix)
        try:
            state, _ = checkpoints.driver_state(ckpt)
            self.learner_version = str(state.get("weight_version", ""))
        except Exception as exc:  # noqa: BLE001 - reported
            self.notes.append(f"checkpoint driver state unreadable: {exc}")
        return f"{storage['uri'].rstrip('/')}/{ckpt.prefix}", checkpoints.is_complete(ckpt)
