"""One pod: a network namespace, its volumes as folders, its containers as processes, its probes.

A supervisor thread plays the kubelet: init containers in order (a failed one is retried with the
kubelet's doubling back-off, capped lower here to keep the rehearsal short), then the containers;
probes as rendered (startup gates readiness and liveness; a failed liveness restarts the
container); restartPolicy on exit. Readiness changes call `on_change` so Service membership (the
hosts files) and NetworkPolicy rules follow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.rehearsal.render import REPO, Container, PodTemplate, Probe, Render, RenderError, resolve_env
from infra.rehearsal.substitutes import launch

BACKOFF_START_S, BACKOFF_CAP_S = 2.0, 16.0   # kubelet: 10 s doubling to 5 min


@dataclass
class Proc:
    container: Container
    popen: subprocess.Popen
    started: float
    log: Path


@dataclass
class Pod:
    name: str
    template: PodTemplate
    ip: str
    ns: str
    folder: Path
    job: bool = False
    backoff_limit: int = 6
    ready: bool = False
    restarts: int = 0
    phase: str = "Pending"          # Pending | Running | Succeeded | Failed | Terminated
    reason: str = ""
    substitutes: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def component(self) -> str:
        return self.template.component

    @property
    def labels(self) -> dict[str, str]:
        return self.template.labels


class Kubelet:
    """Starts and supervises pods; `volume_dir(pod, volume)` says where a volume lives."""

    def __init__(self, render: Render, images: dict[str, str], pvc_root: Path,
                 on_change: Callable[[], None]) -> None:
        self.render, self.images, self.pvc_root = render, images, pvc_root
        self.on_change = on_change
        self.lock = threading.Lock()
        self.created: list[Path] = []
        self.closed = False  # set by the cluster's close: no supervisor starts a process after it

    # ------------------------------------------------------------------ volumes
    def volume_dir(self, pod: Pod, name: str) -> tuple[Path, bool]:
        spec = pod.template.volumes.get(name)
        if spec is None:
            raise RenderError(f"{pod.name}: volumeMount {name!r} names no volume of the pod")
        owner = (pod.template.run_as_user, pod.template.fs_group or pod.template.run_as_group)
        if "emptyDir" in spec:
            path = pod.folder / "volumes" / name
        elif "persistentVolumeClaim" in spec:
            path = self.pvc_root / spec["persistentVolumeClaim"]["claimName"]
        elif "configMap" in spec or "secret" in spec:
            path = pod.folder / "volumes" / name
            ref = spec.get("configMap") or spec.get("secret")
            store = self.render.configmaps if "configMap" in spec else self.render.secrets
            data = store.get(ref.get("name") or ref.get("secretName"))
            if data is None:
                raise RenderError(f"{pod.name}: volume {name}: {'configmap' if 'configMap' in spec else 'secret'} "
                                  f"{ref.get('name') or ref.get('secretName')!r} not found")
            path.mkdir(parents=True, exist_ok=True)
            for key, value in data.items():
                (path / key).write_text(value)
                os.chmod(path / key, 0o644)
            return path, True
        else:
            raise RenderError(f"{pod.name}: volume {name}: kind {sorted(spec)} not supported by the rehearsal")
        if not path.exists():
            path.mkdir(parents=True)
            os.chown(path, *owner)
            os.chmod(path, 0o2775)  # fsGroup: group-owned, setgid
        return path, bool(spec.get("persistentVolumeClaim", {}).get("readOnly"))

    def spec_for(self, pod: Pod, c: Container, fields: dict[str, str]) -> dict:
        how = launch(c, self.images)
        if how.substitute:
            pod.substitutes[c.name] = how.substitute
        env = resolve_env(c.env, self.render, fields, base=how.base_env)
        env.setdefault("HOSTNAME", pod.name)
        env["KUBERNETES_SERVICE_HOST"] = ""  # no API server here
        from infra.rehearsal.render import expand
        argv = [expand(a, env) for a in how.command]
        mounts = []
        for m in c.mounts:
            source, forced_ro = self.volume_dir(pod, m.volume)
            if m.sub_path:
                source = source / m.sub_path
                source.mkdir(parents=True, exist_ok=True)
            mounts.append([str(source), m.path, m.read_only or forced_ro])
        cwd = how.working_dir
        if cwd != "/" and not any(cwd == m[1] or cwd.startswith(m[1].rstrip("/") + "/") for m in mounts):
            # The image's WORKDIR: a directory of the (read-only) image, empty here.
            image_dir = pod.folder / "image" / cwd.strip("/").replace("/", "_")
            image_dir.mkdir(parents=True, exist_ok=True)
            mounts.append([str(image_dir), cwd, False])
        return {"mounts": mounts, "read_only_root": c.read_only_root, "uid": pod.template.run_as_user,
                "gid": pod.template.run_as_group,
                "groups": sorted({pod.template.run_as_group, pod.template.fs_group or pod.template.run_as_group}),
                "cwd": cwd, "env": env, "argv": argv, "hostname": pod.name}

    def start_process(self, pod: Pod, c: Container, fields: dict[str, str]) -> Proc:
        spec = self.spec_for(pod, c, fields)
        with self.lock:  # mount points are made on the host once and removed at the end
            if self.closed:  # a supervisor that outlived close(): it would remake a removed mount point
                raise RenderError(f"{pod.name}: the node is shutting down")
            for _, target, _ in spec["mounts"]:
                missing = [p for p in (Path(target), *Path(target).parents) if not p.exists()]
                Path(target).mkdir(parents=True, exist_ok=True)
                self.created.extend(reversed(missing))
        spec_file = pod.folder / f"spec-{c.name}.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        log = pod.folder / "logs" / f"{c.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 - the child owns it
        try:
            popen = subprocess.Popen(["ip", "netns", "exec", pod.ns, sys.executable, "-m", "infra.rehearsal.podinit",
                                      str(spec_file)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)})
        finally:
            out.close()
        return Proc(c, popen, time.monotonic(), log)

    # ------------------------------------------------------------------ probes
    def probe(self, pod: Pod, p: Probe) -> bool:
        try:
            if p.kind == "http":
                with urllib.request.urlopen(f"http://{pod.ip}:{p.port}{p.path}", timeout=p.timeout_s) as r:
                    return 200 <= r.status < 400
            if p.kind == "tcp":
                with socket.create_connection((pod.ip, p.port), timeout=p.timeout_s):
                    return True
            done = subprocess.run(["ip", "netns", "exec", pod.ns, *p.command], capture_output=True,
                                  timeout=p.timeout_s)
            return done.returncode == 0
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired, ValueError):
            return False

    # ------------------------------------------------------------------ lifecycle
    def start(self, pod: Pod) -> None:
        pod.thread = threading.Thread(target=self._supervise, args=(pod,), name=f"kubelet-{pod.name}", daemon=True)
        pod.thread.start()

    def _set_ready(self, pod: Pod, ready: bool) -> None:
        if ready and pod.reason.startswith("CrashLoopBackOff"):
            pod.reason = ""  # the restart count keeps the history
        if pod.ready != ready:
            pod.ready = ready
            self.on_change()

    def _wait(self, pod: Pod, seconds: float) -> bool:
        return pod.stop_event.wait(seconds)

    def _supervise(self, pod: Pod) -> None:
        fields = {"metadata.name": pod.name, "metadata.namespace": "ml", "status.podIP": pod.ip,
                  "spec.nodeName": "rehearsal-node", "status.hostIP": "10.243.0.1"}
        fields.update({f"metadata.labels['{k}']": v for k, v in pod.labels.items()})
        try:
            for c in pod.template.init_containers:
                pod.phase, pod.reason = "Pending", f"Init:{c.name}"
                backoff = BACKOFF_START_S
                while True:
                    proc = self.start_process(pod, c, fields)
                    while proc.popen.poll() is None:
                        if self._wait(pod, 0.5):
                            return
                    if proc.popen.returncode == 0:
                        break
                    pod.restarts += 1
                    pod.reason = f"Init:CrashLoopBackOff ({c.name} exit {proc.popen.returncode})"
                    if self._wait(pod, backoff):
                        return
                    backoff = min(backoff * 2, BACKOFF_CAP_S)
            self._run_containers(pod, fields)
        except RenderError as exc:
            pod.phase, pod.reason = "Failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a kubelet reports, never dies
            pod.phase, pod.reason = "Failed", f"{type(exc).__name__}: {exc}"

    def _run_containers(self, pod: Pod, fields: dict[str, str]) -> None:
        for c in pod.template.containers:
            pod.procs[c.name] = self.start_process(pod, c, fields)
        pod.phase, pod.reason = "Running", ""
        state = {name: {"started": False, "fail_live": 0, "fail_ready": 0, "ready": False, "next_ready": 0.0,
                        "next_live": 0.0, "next_startup": 0.0} for name in pod.procs}
        backoff = BACKOFF_START_S
        failures = 0
        while not pod.stop_event.is_set():
            now = time.monotonic()
            for name, proc in list(pod.procs.items()):
                c, st = proc.container, state[name]
                code = proc.popen.poll()
                if code is not None:
                    st.update(started=False, ready=False, fail_live=0, fail_ready=0, next_ready=0.0, next_live=0.0,
                              next_startup=0.0)
                    if pod.job and code == 0:
                        pod.phase = "Succeeded"
                        self._set_ready(pod, False)
                        return
                    failures += 1
                    if pod.job and failures > pod.backoff_limit:
                        pod.phase, pod.reason = "Failed", f"BackoffLimitExceeded ({c.name} exit {code})"
                        self._set_ready(pod, False)
                        return
                    if not pod.job and pod.template.restart_policy == "Never":
                        pod.phase, pod.reason = "Failed", f"{c.name} exit {code}"
                        return
                    pod.restarts += 1
                    pod.reason = f"CrashLoopBackOff ({c.name} exit {code})"
                    self._set_ready(pod, False)
                    if self._wait(pod, backoff):
                        return
                    backoff = min(backoff * 2, BACKOFF_CAP_S)
                    pod.procs[name] = self.start_process(pod, c, fields)
                    continue
                age = now - proc.started
                if not st["started"]:
                    if c.startup is None:
                        st["started"] = True
                    elif age >= c.startup.initial_delay_s and now >= st["next_startup"]:
                        st["next_startup"] = now + c.startup.period_s
                        if self.probe(pod, c.startup):
                            st["started"] = True
                        elif age > c.startup.initial_delay_s + c.startup.period_s * c.startup.failure_threshold:
                            pod.reason = f"Startup probe failed ({c.name})"
                            self._kill(proc)
                    if not st["started"]:
                        continue
                p, live = c.readiness, c.liveness
                if p is None:
                    st["ready"] = True
                elif age >= p.initial_delay_s and now >= st["next_ready"]:
                    ok = self.probe(pod, p)
                    st["fail_ready"] = 0 if ok else st["fail_ready"] + 1
                    if ok:
                        st["ready"] = True
                    elif st["fail_ready"] >= p.failure_threshold:
                        st["ready"] = False
                    # Until the first success the kubelet probes at periodSeconds too; 1 s here
                    # so that a ready pod joins its Service without waiting a full period.
                    st["next_ready"] = now + (p.period_s if st["ready"] else min(1.0, p.period_s))
                if live is not None and age >= live.initial_delay_s and now >= st["next_live"]:
                    st["next_live"] = now + live.period_s
                    ok = self.probe(pod, live)
                    st["fail_live"] = 0 if ok else st["fail_live"] + 1
                    if st["fail_live"] >= live.failure_threshold:
                        pod.reason = f"Liveness probe failed ({c.name})"
                        self._kill(proc)
            self._set_ready(pod, all(s["ready"] for s in state.values()))
            if self._wait(pod, 0.5):
                return

    @staticmethod
    def _kill(proc: Proc) -> None:
        try:
            os.killpg(proc.popen.pid, 9)
        except ProcessLookupError:
            pass

    def stop(self, pod: Pod, grace_s: float = 10.0) -> None:
        """Terminate the pod: SIGTERM to every process in its namespace, SIGKILL after the grace period."""
        from infra.rehearsal.netns import kill_namespace_processes

        pod.stop_event.set()
        self._set_ready(pod, False)
        kill_namespace_processes(pod.ns, grace_s=grace_s)
        for proc in pod.procs.values():
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill(proc)
        if pod.thread is not None:
            pod.thread.join(timeout=5)
        if pod.phase not in ("Succeeded", "Failed"):
            pod.phase = "Terminated"

