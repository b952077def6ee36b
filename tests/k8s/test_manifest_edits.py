"""`--set` edits, `--override` config overrides, and headless-Service fan-out."""

from __future__ import annotations

import shlex
import socket

import pytest

from videop2r.http.resolution import expand_endpoints
from videop2r.k8s.manifest import ManifestError, append_overrides, apply_set, load_rayjob, split_set_path


def test_set_paths_escape_dots_and_index_lists():
    assert split_set_path(r"spec.clusterSelector.ray\.io/cluster") == ["spec", "clusterSelector", "ray.io/cluster"]
    assert split_set_path("spec.a[0].b[12]") == ["spec", "a", 0, "b", 12]
    with pytest.raises(ManifestError, match="bad path"):
        split_set_path("spec..a")


def test_set_values_are_yaml_and_create_parents():
    job = {"spec": {"submitterPodTemplate": {"spec": {"containers": [{"name": "c", "image": "old"}]}}}}
    apply_set(job, "spec.activeDeadlineSeconds=3600")
    apply_set(job, "spec.shutdownAfterJobFinishes=false")
    apply_set(job, "spec.submitterPodTemplate.spec.containers[0].image=repo/img:1.2")
    apply_set(job, "spec.submitterPodTemplate.spec.containers[0].env[0].name=A")
    apply_set(job, r"metadata.labels.team\.io/owner=vision")
    apply_set(job, 'metadata.name="007"')
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["shutdownAfterJobFinishes"] is False
    container = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert container["image"] == "repo/img:1.2" and container["env"] == [{"name": "A"}]
    assert job["metadata"] == {"labels": {"team.io/owner": "vision"}, "name": "007"}


@pytest.mark.parametrize(("assignment", "message"), [
    ("spec.entrypoint", "not of the form key=value"),
    ("=3", "not of the form key=value"),
    ("spec.entrypoint[0]=x", "not a list"),
    ("spec.list[3]=x", "past the end"),
    ("spec.entrypoint.deeper=x", "not a mapping"),
])
def test_bad_set_edits_are_clear_errors(assignment, message):
    job = {"spec": {"entrypoint": "videop2r train", "list": []}}
    with pytest.raises(ManifestError, match=message):
        apply_set(job, assignment)


def test_overrides_are_appended_shell_quoted():
    job = {"spec": {"entrypoint": "videop2r train --config c.yaml"}}
    append_overrides(job, ["trainer.total_steps=5", "trainer.run_name=my run"])
    assert shlex.split(job["spec"]["entrypoint"]) == [
        "videop2r", "train", "--config", "c.yaml", "trainer.total_steps=5", "trainer.run_name=my run"]
    with pytest.raises(ManifestError, match="a.b.c=value"):
        append_overrides(job, ["; rm -rf /"])


def test_load_rayjob_refuses_other_documents(tmp_path):
    (tmp_path / "two.yaml").write_text("apiVersion: ray.io/v1\nkind: RayJob\n---\napiVersion: v1\nkind: Pod\n")
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(ManifestError, match="exactly one RayJob"):
        load_rayjob(tmp_path / "two.yaml")
    with pytest.raises(ManifestError, match="expected apiVersion ray.io/v1 kind RayJob"):
        load_rayjob(tmp_path / "pod.yaml")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_rayjob(tmp_path / "bad.yaml")
    with pytest.raises(ManifestError, match="no such file"):
        load_rayjob(tmp_path / "missing.yaml")


def test_headless_service_fans_out_to_every_pod():
    answers = {"rollout.ml.svc": ["10.0.0.7", "10.0.0.8", "10.0.0.7", "fd00::9"]}

    def resolve(host, port, type=None):  # noqa: A002 - getaddrinfo's keyword
        if host not in answers:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, type, 6, "", (address, port)) for address in answers[host]]

    urls = ["http://rollout.ml.svc:30000", "http://gone.ml.svc:30000", "http://10.0.0.1:1", "https://judge.example.com"]
    assert expand_endpoints(urls, resolve) == [
        "http://10.0.0.7:30000", "http://10.0.0.8:30000", "http://[fd00::9]:30000",
        "http://gone.ml.svc:30000", "http://10.0.0.1:1", "https://judge.example.com"]


def test_fan_out_with_the_real_resolver():
    # localhost is kept whole (a server on 127.0.0.1 does not answer on ::1); other names resolve
    assert expand_endpoints(["http://localhost:8000/v1"]) == ["http://localhost:8000/v1"]
    assert expand_endpoints(["http://127.0.0.1:8000/v1"]) == ["http://127.0.0.1:8000/v1"]


def test_rollout_client_fans_out_over_the_configured_service(monkeypatch):
    from videop2r.config import RolloutConfig
    from videop2r.http import resolution as endpoints_module
    from videop2r.rollout import RolloutClient

    def resolve(host, port, type=None):  # noqa: A002 - getaddrinfo's keyword
        return [(socket.AF_INET, type, 6, "", (address, port)) for address in ("10.1.0.4", "10.1.0.5")]

    monkeypatch.setattr(endpoints_module.socket, "getaddrinfo", resolve)
    client = RolloutClient.from_config(RolloutConfig(endpoints=["http://rollout.ml.svc:30000"]))
    assert [endpoint.url for endpoint in client.endpoints] == ["http://10.1.0.4:30000", "http://10.1.0.5:30000"]
