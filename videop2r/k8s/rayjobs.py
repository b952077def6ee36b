"""RayJobs through the Kubernetes API: create, get, list, delete (stop), wait, and the driver logs.

The shape follows KubeRay's own Python client (`RayjobApi`: submit_job, get_job, list_jobs,
delete_job, wait_until_job_finished), on top of the official `kubernetes` client's
CustomObjectsApi for ray.io/v1. In K8sJobMode the driver's output is the log of the submitter
Job's pod (the Job is named after the RayJob), so logs come from that pod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from videop2r.k8s.connection import Connection, KubernetesError
from videop2r.k8s.status import RayJobStatus, status_of

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
KUBERAY_MISSING = ("the API server does not serve ray.io/v1 RayJobs: install the KubeRay operator "
                   "(it brings the CRDs rayjobs.ray.io and rayclusters.ray.io), e.g. "
                   "`helm install kuberay-operator kuberay/kuberay-operator`")


class RayJobs:
    """RayJob operations in one namespace (or all, for `list`)."""

    def __init__(self, connection: Connection, namespace: str | None = None):
        self.connection = connection
        self.namespace = namespace or connection.namespace
        self.custom = client.CustomObjectsApi(connection.api)
        self.core = client.CoreV1Api(connection.api)

    # -- CRUD ------------------------------------------------------------------------------

    def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        """Create the RayJob; the server rejects unknown fields (fieldValidation=Strict)."""
        job.setdefault("metadata", {})["namespace"] = self.namespace
        return self._call("create", lambda: self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, job, field_validation="Strict"), name=_name(job))

    def cluster(self, name: str) -> dict[str, Any] | None:
        """The RayCluster `name` in the namespace, or None when there is none."""
        def request() -> dict[str, Any] | None:
            try:
                return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "rayclusters", name)
            except ApiException as exc:
                status = _status_body(exc.body)
                # a Status 404 = no such object; a plain "404 page not found" = no KubeRay at all
                if exc.status == 404 and status and (status.get("details") or {}).get("kind") != "namespaces":
                    return None
                raise
        return self._call("get", request)

    def cluster_names(self) -> list[str]:
        """Names of the RayClusters in the namespace (for a helpful error)."""
        answer = self._call("list", lambda: self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rayclusters"))
        return sorted(item["metadata"]["name"] for item in answer.get("items") or [])

    def get(self, name: str) -> dict[str, Any]:
        return self._call("get", lambda: self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name), name=name)

    def list(self, all_namespaces: bool = False, selector: str | None = None) -> list[dict[str, Any]]:
        if all_namespaces:
            answer = self._call("list", lambda: self.custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, label_selector=selector))
        else:
            answer = self._call("list", lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, label_selector=selector))
        return list(answer.get("items") or [])

    def stop(self, name: str) -> None:
        """Delete the RayJob: KubeRay's finalizer stops the Ray job on the cluster first."""
        body = client.V1DeleteOptions(propagation_policy="Background")
        self._call("delete", lambda: self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body=body), name=name)

    # -- waiting and logs -----------------------------------------------------------------------

    def wait(self, name: str, timeout_s: float | None = None, poll_s: float = 10.0,
             on_change: Callable[[RayJobStatus], None] | None = None) -> RayJobStatus:
        """Poll until the RayJob's deployment status is terminal; `on_change` sees every new state."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            status = status_of(self.get(name))
            if on_change and status.summary() != last:
                on_change(status)
            last = status.summary()
            if status.finished:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise KubernetesError(f"RayJob {name} not finished after {timeout_s:g} s (now {status.summary()})")
            time.sleep(poll_s)

    def submitter_pod(self, name: str) -> str | None:
        """The newest pod of the submitter Job (named after the RayJob), if any."""
        pods = self._call("list pods", lambda: self.core.list_namespaced_pod(
            self.namespace, label_selector=f"job-name={name}"))
        items = sorted(pods.items or [], key=lambda pod: pod.metadata.creation_timestamp or 0)
        return items[-1].metadata.name if items else None

    def logs(self, name: str, follow: bool = False, tail_lines: int | None = None) -> Iterator[str]:
        """Lines of the driver's output (the submitter pod's log); `follow` streams until it ends."""
        self.get(name)  # a clear "not found" first
        pod = self.submitter_pod(name)
        if pod is None:
            status = status_of(self.get(name))
            raise KubernetesError(f"RayJob {name} has no submitter pod yet ({status.summary()}); "
                                  "try again when it is Running")
        if not follow:
            text = self._call("read logs", lambda: self.core.read_namespaced_pod_log(
                pod, self.namespace, tail_lines=tail_lines))
            yield from text.splitlines()
            return
        response = self._call("follow logs", lambda: self.core.read_namespaced_pod_log(
            pod, self.namespace, follow=True, tail_lines=tail_lines, _preload_content=False))
        pending = b""
        try:
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()

    # -- errors ----------------------------------------------------------------------------

    def _call(self, what: str, request: Callable[[], Any], name: str | None = None) -> Any:
        try:
            return request()
        except ApiException as exc:
            raise KubernetesError(self._explain(what, exc, name)) from None
        except HTTPError as exc:
            raise KubernetesError(f"cannot reach the Kubernetes API at {self.connection.host}: "
                                  f"{type(exc).__name__}: {exc}") from None

    def _explain(self, what: str, exc: ApiException, name: str | None) -> str:
        status = _status_body(exc.body)
        message = status.get("message") or (exc.reason or "").strip()
        details = status.get("details") or {}
        if exc.status == 404:
            if not status:  # a plain "404 page not found": the resource type is not served at all
                return KUBERAY_MISSING if what not in ("list pods", "read logs", "follow logs") else \
                    f"{what}: {message}"
            if details.get("kind") == "namespaces":
                return f"namespace {self.namespace} does not exist"
            if name and details.get("kind") in ("rayjobs", None):
                return f"RayJob {name} not found in namespace {self.namespace}"
        if exc.status == 409:
            return (f"a RayJob named {name} already exists in namespace {self.namespace}: "
                    "stop it (`videop2r jobs stop`) or --set metadata.name=<another>")
        if exc.status in (401, 403):
            return f"the API server refused to {what} RayJobs ({exc.status}): {message}"
        if exc.status in (400, 422):
            return f"the API server rejected the RayJob: {message}"
        return f"{what} failed ({exc.status} {exc.reason}): {message}"


def _status_body(body: Any) -> dict[str, Any]:
    """The metav1.Status the API server sends with an error, or {} for anything else."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) and parsed.get("kind") == "Status" else {}


def _name(job: dict[str, Any]) -> str:
    meta = job.get("metadata") or {}
    return meta.get("name") or f"{meta.get('generateName', '')}<generated>"
