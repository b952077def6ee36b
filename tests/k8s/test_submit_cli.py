"""`videop2r submit` and `videop2r jobs ...` against a loopback Kubernetes API stand-in that records
every call: the exact objects, paths, parameters and credentials they use, and their errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from videop2r.cli import main

ROOT = Path(__file__).resolve().parents[2]
PA_GRPO = ROOT / "jobs" / "pa-grpo.yaml"
JOBS_PATH = "/apis/ray.io/v1/namespaces/ml/rayjobs"
NAME = "videop2r-pa-grpo-x7k2p"


def rayjob(name=NAME, namespace="ml", status=None, **spec):
    job = yaml.safe_load(PA_GRPO.read_text())
    job["metadata"].pop("generateName")
    job["metadata"].update(name=name, namespace=namespace, creationTimestamp="2026-01-01T00:00:00Z")
    job["spec"].update(spec)
    if status:
        job["status"] = status
    return job


CLUSTER_PATH = "/apis/ray.io/v1/namespaces/{ns}/rayclusters/videop2r"


@pytest.fixture(scope="module")
def chart_cluster(helm):
    """The chart's RayCluster for a release named videop2r, with its own image and pull secret."""
    from tests.k8s.conftest import CHART, run_helm

    done = run_helm(helm, "template", "videop2r", str(CHART), "--show-only", "templates/raycluster.yaml",
                    "--set", "image.repository=registry.example.com/team/videop2r", "--set", "image.tag=1.2.3",
                    "--set", "imagePullSecrets[0].name=regcred")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture
def cluster_api(api, chart_cluster):
    """The API stand-in with the chart's RayCluster `videop2r` in the usual namespaces."""
    for ns in ("ml", "prod", "other-ns", "from-manifest", "team-a"):
        api.on("GET", CLUSTER_PATH.format(ns=ns), (200, chart_cluster))
    return api


def submitted(api):
    [call] = [c for c in api.calls if c.method == "POST"]
    return call


def api_status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code, **({"details": details} if details else {})}


# -- submit -------------------------------------------------------------------------------------------

def test_submit_creates_exactly_the_manifest(cluster_api, capsys):
    api = cluster_api
    api.on("POST", JOBS_PATH, (201, rayjob()))
    code = main(["submit", str(PA_GRPO), "--set", "spec.activeDeadlineSeconds=600",
                 "--set", r"metadata.labels.team\.io/owner=vision", "--override", "trainer.total_steps=5"])
    assert code == 0
    assert [(c.method, c.path) for c in api.calls] == [("GET", CLUSTER_PATH.format(ns="ml")), ("POST", JOBS_PATH)]
    call = submitted(api)
    assert call.query == {"fieldValidation": ["Strict"]}
    assert call.headers["authorization"] == "Bearer t0ken"
    expected = yaml.safe_load(PA_GRPO.read_text())
    expected["metadata"]["namespace"] = "ml"
    expected["metadata"]["labels"]["team.io/owner"] = "vision"
    expected["spec"]["activeDeadlineSeconds"] = 600
    expected["spec"]["entrypoint"] += " trainer.total_steps=5"
    # the submitter runs the chart's image with its pull secret (filled from the RayCluster)
    pod = expected["spec"]["submitterPodTemplate"]["spec"]
    pod["containers"][0].update(image="registry.example.com/team/videop2r:1.2.3", imagePullPolicy="IfNotPresent")
    pod["imagePullSecrets"] = [{"name": "regcred"}]
    assert call.body == expected
    out = capsys.readouterr().out
    assert f"rayjob/{NAME} created in namespace ml" in out
    assert f"videop2r jobs logs {NAME} -n ml --follow" in out


@pytest.mark.parametrize(("args", "namespace"), [
    (["--namespace", "prod"], "prod"),
    (["--context", "other"], "other-ns"),
    (["--set", "metadata.namespace=from-manifest"], "from-manifest"),
])
def test_submit_namespace_resolution(cluster_api, args, namespace):
    api = cluster_api
    api.on("POST", f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs", (201, rayjob(namespace=namespace)))
    assert main(["submit", str(PA_GRPO), *args]) == 0
    assert api.calls[0].path == CLUSTER_PATH.format(ns=namespace)
    assert submitted(api).path == f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs"
    assert submitted(api).body["metadata"]["namespace"] == namespace


def test_submit_wait_polls_until_complete(cluster_api, capsys):
    api = cluster_api
    api.on("POST", JOBS_PATH, (201, rayjob()))
    api.on("GET", f"{JOBS_PATH}/{NAME}",
           (200, rayjob(status={"jobDeploymentStatus": "Initializing"})),
           (200, rayjob(status={"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})),
           (200, rayjob(status={"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})),
           (200, rayjob(status={"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"})))
    assert main(["submit", str(PA_GRPO), "--wait", "--poll", "0.01"]) == 0
    assert [c.method for c in api.calls] == ["GET", "POST", "GET", "GET", "GET", "GET"]
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"rayjob/{NAME}: Initializing/-", f"rayjob/{NAME}: Running/RUNNING",
                                         f"rayjob/{NAME}: Complete/SUCCEEDED"]
    assert f"rayjob/{NAME} finished: Complete/SUCCEEDED" in captured.out


def test_submit_wait_fails_when_the_job_fails(cluster_api, capsys):
    api = cluster_api
    api.on("POST", JOBS_PATH, (201, rayjob()))
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob(status={
        "jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "DeadlineExceeded",
        "message": "The RayJob has passed the activeDeadlineSeconds."})))
    assert main(["submit", str(PA_GRPO), "--wait", "--poll", "0.01"]) == 1
    assert "Failed/FAILED (DeadlineExceeded): The RayJob has passed the activeDeadlineSeconds." in capsys.readouterr().out


def test_submit_wait_gives_up_after_the_timeout(cluster_api, capsys):
    api = cluster_api
    api.on("POST", JOBS_PATH, (201, rayjob()))
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob(status={"jobDeploymentStatus": "Running"})))
    assert main(["submit", str(PA_GRPO), "--wait", "--poll", "0.02", "--timeout", "0.1"]) == 1
    assert f"RayJob {NAME} not finished after 0.1 s (now Running/-)" in capsys.readouterr().err


@pytest.mark.parametrize(("reply_args", "message"), [
    ((404, "404 page not found\n", "text/plain"), "install the KubeRay operator"),
    ((404, api_status(404, "NotFound", 'namespaces "ml" not found', {"name": "ml", "kind": "namespaces"})),
     "namespace ml does not exist"),
    ((409, api_status(409, "AlreadyExists", "exists", {"name": "run1", "kind": "rayjobs"})),
     "a RayJob named run1 already exists in namespace ml"),
    ((403, api_status(403, "Forbidden", 'rayjobs.ray.io is forbidden: User "dev" cannot create resource')),
     'refused to create RayJobs (403): rayjobs.ray.io is forbidden: User "dev" cannot create resource'),
    ((422, api_status(422, "Invalid", 'RayJob.ray.io "run1" is invalid: spec.entrypointNumCpus: Invalid value')),
     'rejected the RayJob: RayJob.ray.io "run1" is invalid: spec.entrypointNumCpus'),
    ((400, api_status(400, "BadRequest", 'strict decoding error: unknown field "spec.bogus"')),
     'unknown field "spec.bogus"'),
])
def test_submit_explains_api_errors(cluster_api, capsys, reply_args, message):
    api = cluster_api
    api.on("POST", JOBS_PATH, reply_args)
    assert main(["submit", str(PA_GRPO), "--set", "metadata.name=run1"]) == 1
    assert message in capsys.readouterr().err


def test_submit_without_an_api_server(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
              "users": [{"name": "u", "user": {"token": "x"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    assert main(["submit", str(PA_GRPO)]) == 1
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in capsys.readouterr().err


def test_submit_without_credentials(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["submit", str(PA_GRPO)]) == 1
    assert "no Kubernetes credentials: no kubeconfig" in capsys.readouterr().err
    assert main(["submit", str(PA_GRPO), "--kubeconfig", str(tmp_path / "nope")]) == 1
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_submit_in_cluster_with_the_service_account(tls_api, chart_cluster, tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    from videop2r.k8s import connection

    recorder, ca = tls_api
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("team-a\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setattr(connection, "IN_CLUSTER_NAMESPACE", tmp_path / "namespace")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", recorder.url.rsplit(":", 1)[1])
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    recorder.on("POST", "/apis/ray.io/v1/namespaces/team-a/rayjobs", (201, rayjob(namespace="team-a")))
    recorder.on("GET", CLUSTER_PATH.format(ns="team-a"), (200, chart_cluster))
    assert main(["submit", str(PA_GRPO)]) == 0
    call = submitted(recorder)
    assert call.path == "/apis/ray.io/v1/namespaces/team-a/rayjobs"
    assert call.headers["authorization"].lower() == "bearer sa-token"  # the in-cluster loader writes "bearer"


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "metadata.name=Bad_Name"], "metadata.name 'Bad_Name' must be a DNS-1035 label"),
    (["--set", "spec.backoffLimit=3"], "spec.backoffLimit is not allowed with clusterSelector"),
    (["--set", "spec.entrypoint[0]=x"], "indexes something that is not a list"),
    (["--override", "not an override"], "is not of the form a.b.c=value"),
])
def test_submit_refuses_bad_edits_before_calling_the_api(api, capsys, args, message):
    assert main(["submit", str(PA_GRPO), *args]) == 2
    assert message in capsys.readouterr().err
    assert api.calls == []


def test_submit_refuses_a_file_that_is_no_rayjob(api, tmp_path, capsys):
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert main(["submit", str(tmp_path / "pod.yaml")]) == 2
    assert "expected apiVersion ray.io/v1 kind RayJob, got v1 Pod" in capsys.readouterr().err
    assert api.calls == []


def test_submit_dry_run_prints_and_sends_nothing(api, capsys):
    assert main(["submit", str(PA_GRPO), "--dry-run", "-n", "prod", "--override", "trainer.lr=1e-6"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["metadata"]["namespace"] == "prod"
    assert printed["spec"]["entrypoint"].endswith(" trainer.lr=1e-6")
    assert api.calls == []


# -- jobs list / status / logs / stop -----------------------------------------------------------------

def test_jobs_list_table_and_json(api, capsys):
    items = [rayjob(status={"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": "videop2r"}),
             rayjob(name="videop2r-eval-a1b2c")]
    api.on("GET", JOBS_PATH, (200, {"apiVersion": "ray.io/v1", "kind": "RayJobList", "items": items}))
    assert main(["jobs", "list", "-l", "app.kubernetes.io/part-of=videop2r"]) == 0
    assert api.calls[0].query == {"labelSelector": ["app.kubernetes.io/part-of=videop2r"]}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "JOB", "STATUS", "DEPLOYMENT", "CLUSTER", "AGE"]
    assert lines[1].split()[:4] == [NAME, "RUNNING", "Running", "videop2r"]
    assert lines[2].split()[:4] == ["videop2r-eval-a1b2c", "-", "New", "videop2r"]
    assert main(["jobs", "list", "-o", "json"]) == 0
    assert [j["metadata"]["name"] for j in json.loads(capsys.readouterr().out)] == [NAME, "videop2r-eval-a1b2c"]


def test_jobs_list_all_namespaces(api, capsys):
    api.on("GET", "/apis/ray.io/v1/rayjobs", (200, {"items": [rayjob(namespace="a"), rayjob(namespace="b")]}))
    assert main(["jobs", "list", "-A"]) == 0
    assert api.calls[0].path == "/apis/ray.io/v1/rayjobs"
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("NAMESPACE") and [r.split()[0] for r in rows[1:]] == ["a", "b"]


def test_jobs_status(api, capsys):
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob(status={
        "jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "jobId": "raysubmit_1",
        "rayClusterName": "videop2r", "dashboardURL": "videop2r-head-svc.ml.svc:8265",
        "startTime": "2026-01-01T00:00:05Z"})))
    assert main(["jobs", "status", NAME]) == 0
    out = capsys.readouterr().out
    for line in ("Deployment status: Running", "Job status:        RUNNING", "Ray job id:        raysubmit_1",
                 "RayCluster:        videop2r", "Dashboard:         videop2r-head-svc.ml.svc:8265",
                 "Entrypoint:        videop2r train --config /etc/videop2r/videop2r.yaml"):
        assert line in out
    assert main(["jobs", "status", NAME, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobId"] == "raysubmit_1"


def test_jobs_status_of_a_missing_job(api, capsys):
    api.on("GET", f"{JOBS_PATH}/nope", (404, api_status(404, "NotFound", 'rayjobs.ray.io "nope" not found',
                                                            {"name": "nope", "group": "ray.io", "kind": "rayjobs"})))
    assert main(["jobs", "status", "nope"]) == 1
    assert "RayJob nope not found in namespace ml" in capsys.readouterr().err


def pod(name: str, created: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ml", "creationTimestamp": created,
                         "labels": {"job-name": NAME}}}


def test_jobs_logs_read_the_newest_submitter_pod(api, capsys):
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob()))
    api.on("GET", "/api/v1/namespaces/ml/pods", (200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                                             "items": [pod("sub-new", "2026-01-01T01:00:00Z"),
                                                                       pod("sub-old", "2026-01-01T00:00:00Z")]}))
    api.on("GET", "/api/v1/namespaces/ml/pods/sub-new/log", (200, "step 1 reward 0.5\nstep 2 reward 0.6\n", "text/plain"))
    assert main(["jobs", "logs", NAME, "--tail", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["step 1 reward 0.5", "step 2 reward 0.6"]
    pods_call = next(c for c in api.calls if c.path.endswith("/pods"))
    assert pods_call.query == {"labelSelector": [f"job-name={NAME}"]}
    log_call = next(c for c in api.calls if c.path.endswith("/log"))
    assert log_call.query == {"tailLines": ["2"]}


def test_jobs_logs_follow_streams(api, capsys):
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob()))
    api.on("GET", "/api/v1/namespaces/ml/pods", (200, {"items": [pod("sub", "2026-01-01T00:00:00Z")]}))
    api.on("GET", "/api/v1/namespaces/ml/pods/sub/log", (200, "a\nb\npartial", "text/plain"))
    assert main(["jobs", "logs", NAME, "-f"]) == 0
    assert capsys.readouterr().out.splitlines() == ["a", "b", "partial"]
    assert next(c for c in api.calls if c.path.endswith("/log")).query == {"follow": ["true"]}


def test_jobs_logs_before_the_submitter_exists(api, capsys):
    api.on("GET", f"{JOBS_PATH}/{NAME}", (200, rayjob(status={"jobDeploymentStatus": "Initializing"})))
    api.on("GET", "/api/v1/namespaces/ml/pods", (200, {"items": []}))
    assert main(["jobs", "logs", NAME]) == 1
    assert f"RayJob {NAME} has no submitter pod yet (Initializing/-)" in capsys.readouterr().err


def test_jobs_stop_deletes_in_the_background(api, capsys):
    api.on("DELETE", f"{JOBS_PATH}/{NAME}", (200, api_status(200, "", "")))
    assert main(["jobs", "stop", NAME]) == 0
    [call] = api.calls
    assert (call.method, call.path) == ("DELETE", f"{JOBS_PATH}/{NAME}")
    assert call.body["propagationPolicy"] == "Background"
    assert f"rayjob/{NAME} deleted from namespace ml" in capsys.readouterr().out


def test_jobs_commands_without_kuberay(api, capsys):
    for argv in (["jobs", "list"], ["jobs", "status", NAME], ["jobs", "stop", NAME]):
        assert main(argv) == 1
        assert "install the KubeRay operator" in capsys.readouterr().err


# -- the submitter comes from the target RayCluster ------------------------------------------------

def test_every_job_leaves_the_submitter_image_to_the_cluster():
    for path in sorted((ROOT / "jobs").glob("*.yaml")):
        container = yaml.safe_load(path.read_text())["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
        assert "image" not in container, f"{path.name}: a hard-coded submitter image"


def test_submit_refuses_a_selector_that_matches_no_cluster(api, capsys):
    api.on("GET", "/apis/ray.io/v1/namespaces/ml/rayclusters/videop2r",
           (404, api_status(404, "NotFound", 'rayclusters.ray.io "videop2r" not found',
                            {"name": "videop2r", "group": "ray.io", "kind": "rayclusters"})))
    api.on("GET", "/apis/ray.io/v1/namespaces/ml/rayclusters",
           (200, {"items": [{"metadata": {"name": "prod-videop2r"}}]}))
    assert main(["submit", str(PA_GRPO)]) == 2
    err = capsys.readouterr().err
    assert "ray.io/cluster=videop2r matches no RayCluster in namespace ml (there: prod-videop2r)" in err
    assert not [c for c in api.calls if c.method == "POST"], "nothing is created"


def test_submit_without_kuberay_says_so(api, capsys):
    assert main(["submit", str(PA_GRPO)]) == 1  # every path answers a plain 404: no ray.io API
    assert "install the KubeRay operator" in capsys.readouterr().err
    assert not [c for c in api.calls if c.method == "POST"]


def test_an_explicit_submitter_image_is_kept(cluster_api, capsys):
    cluster_api.on("POST", JOBS_PATH, (201, rayjob()))
    image = "spec.submitterPodTemplate.spec.containers[0].image=mirror.example.com/videop2r:pinned"
    assert main(["submit", str(PA_GRPO), "--set", image]) == 0
    pod = submitted(cluster_api).body["spec"]["submitterPodTemplate"]["spec"]
    assert pod["containers"][0]["image"] == "mirror.example.com/videop2r:pinned"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]  # the cluster's secret is still added


def test_fill_submitter_needs_a_head_container():
    from videop2r.k8s.submitter import SubmitterError, fill_submitter

    job = yaml.safe_load(PA_GRPO.read_text())
    with pytest.raises(SubmitterError, match="no head container"):
        fill_submitter(job, {"metadata": {"name": "c"}, "spec": {"headGroupSpec": {"template": {"spec": {}}}}})
