"""The structural-schema validator, and jobs/*.yaml against the KubeRay CRDs."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml

from videop2r.k8s.crd_schema import CustomResourceSchema, validate_custom_resource, validate_value
from videop2r.k8s.manifest import check_rayjob

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted((ROOT / "jobs").glob("*.yaml"))

SCHEMA = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "format": "int32", "minimum": 0},
                "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                         "properties": {"known": {"type": "boolean"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "opaque": {"type": "object"},
                "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
                "note": {"type": "string", "nullable": True},
                "ratio": {"type": "number"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                          "items": {"type": "object", "properties": {"containerPort": {"type": "integer"},
                                                                      "protocol": {"type": "string"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "policy": {"type": "object",
                           "properties": {"onSuccess": {"type": "string"}, "onFailure": {"type": "string"},
                                          "rules": {"type": "array", "items": {"type": "string"}}},
                           "x-kubernetes-validations": [
                               {"rule": "!((has(self.onSuccess) || has(self.onFailure)) && has(self.rules))",
                                "message": "legacy and rules together"},
                               {"rule": "(has(self.onSuccess) && has(self.onFailure)) || has(self.rules)",
                                "message": "need both or rules"},
                               {"rule": "self == oldSelf", "message": "immutable"}]},
                "manager": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']", "message": "bad manager"}]},
            },
        },
    },
}
CRD = [CustomResourceSchema("example.io", "v1", "Thing", SCHEMA)]


def thing(**spec):
    return {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"size": 1, **spec}}


def messages(obj) -> list[str]:
    return [str(v) for v in validate_custom_resource(obj, CRD)]


def test_a_valid_object_has_no_violations():
    assert messages(thing(port="http", mode="a", name="ab", labels={"k": "v"}, note=None, ratio=1,
                          free={"known": True, "anything": [1, {"deep": 2}]},
                          embedded={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}},
                          ports=[{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "UDP"}],
                          tags=["a", "b"], policy={"rules": ["r"]}, manager="ray.io/kuberay-operator")) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"bogus": 1}, ".spec.bogus: unknown field"),
    ({"opaque": {"x": 1}}, ".spec.opaque.x: unknown field"),
    ({"free": {"known": "yes"}}, ".spec.free.known: expected boolean"),
    ({"embedded": {"kind": "Pod", "spec": {"y": 1}}}, ".spec.embedded.spec.y: unknown field"),
    ({"size": "1"}, ".spec.size: expected integer, got string"),
    ({"size": True}, ".spec.size: expected integer, got boolean"),
    ({"size": -1}, "below the minimum 0"),
    ({"size": 2**31}, "does not fit int32"),
    ({"port": 1.5}, ".spec.port: expected integer or string"),
    ({"mode": "c"}, "'c' is not one of ['a', 'b']"),
    ({"name": "ABC"}, "does not match"),
    ({"name": "abcdef"}, "longer than 5 characters"),
    ({"labels": {"k": 1}}, ".spec.labels.k: expected string"),
    ({"mode": None}, ".spec.mode: null is not allowed"),
    ({"ratio": "x"}, "expected number"),
    ({"ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "TCP"}]},
     ".spec.ports[1]: duplicate"),
    ({"tags": ["a", "a"]}, ".spec.tags[1]: duplicate item 'a' in a set"),
    ({"policy": {"onSuccess": "x", "rules": ["r"]}}, ".spec.policy: legacy and rules together"),
    ({"policy": {"onSuccess": "x"}}, ".spec.policy: need both or rules"),
    ({"manager": "me"}, ".spec.manager: bad manager"),
])
def test_violations_name_the_field(spec, expected):
    found = messages(thing(**spec))
    assert any(expected in m for m in found), found


def test_required_fields_metadata_and_kind():
    obj = thing()
    del obj["spec"]["size"]
    assert ".spec.size: required field is missing" in messages(obj)
    assert any("name or generateName is required" in m for m in messages({**thing(), "metadata": {}}))
    assert any("not a DNS-1123 name" in m for m in messages({**thing(), "metadata": {"name": "Bad_Name"}}))
    assert any("unknown field of ObjectMeta" in m for m in messages({**thing(), "metadata": {"name": "a", "lables": {}}}))
    assert messages({**thing(), "kind": "Other"}) == ["<root>: no CRD schema for example.io/v1 Other"]


def test_unsupported_cel_is_reported_not_ignored():
    schema = {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() > 2"}]}
    assert "cannot evaluate CEL rule" in str(validate_value(schema, "abc")[0])


# -- jobs/ ------------------------------------------------------------------------------------------

def test_there_is_a_job_per_stage():
    assert [j.stem for j in JOBS] == ["cot", "eval", "pa-grpo", "sft"]


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_job_validates_against_the_rayjob_crd(job, crd_schemas):
    manifest = yaml.safe_load(job.read_text())
    violations = validate_custom_resource(manifest, crd_schemas)
    assert not violations, "\n".join(map(str, violations))
    assert check_rayjob(manifest) == []


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_job_lifecycle_is_set_on_purpose(job):
    text = job.read_text()
    spec = yaml.safe_load(text)["spec"]
    assert spec["clusterSelector"]["ray.io/cluster"]
    assert "rayClusterSpec" not in spec
    assert spec["shutdownAfterJobFinishes"] is True
    assert 0 < spec["ttlSecondsAfterFinished"] and 0 < spec["activeDeadlineSeconds"]
    assert spec["submissionMode"] == "K8sJobMode"
    for field in ("shutdownAfterJobFinishes", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        line = next(i for i, row in enumerate(text.splitlines()) if row.strip().startswith(f"{field}:"))
        assert text.splitlines()[line - 1].strip().startswith("#"), f"{job.name}: {field} needs a why-comment"
    pod = spec["submitterPodTemplate"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_job_entrypoint_is_a_videop2r_command_on_the_chart_config(job):
    from videop2r.cli import build_parser

    argv = shlex.split(yaml.safe_load(job.read_text())["spec"]["entrypoint"])
    assert argv[0] == "videop2r"
    # SFT reads the chart's sft.yaml (model.path = the base model), the others videop2r.yaml
    config = "/etc/videop2r/sft.yaml" if job.stem == "sft" else "/etc/videop2r/videop2r.yaml"
    assert argv[argv.index("--config") + 1] == config
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # the registered areas' commands
    # every area is built: a command missing here was renamed or lost, and the job would fail on the cluster
    assert argv[1] in commands, f"{job.name}: `videop2r {argv[1]}` is not a command (have {sorted(commands)})"
    args = parser.parse_args(argv[1:])
    assert args.config == config


def test_check_rayjob_mirrors_kuberay_admission():
    base = yaml.safe_load((ROOT / "jobs" / "pa-grpo.yaml").read_text())
    cases = {
        "metadata.name 'Run_1'": ("metadata", {"name": "Run_1"}),
        "at most 47 characters": ("metadata", {"name": "r" * 48}),
        "needs ray.io/cluster": ("spec.clusterSelector", {"app": "x"}),
        "backoffLimit is not allowed": ("spec.backoffLimit", 2),
        "needs spec.shutdownAfterJobFinishes": ("spec.shutdownAfterJobFinishes", False),
        "spec.entrypoint is empty": ("spec.entrypoint", ""),
        "activeDeadlineSeconds must be positive": ("spec.activeDeadlineSeconds", 0),
    }
    for expected, (path, value) in cases.items():
        job = copy.deepcopy(base)
        node = job
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
        problems = check_rayjob(job)
        assert any(expected in p for p in problems), (expected, problems)
    job = copy.deepcopy(base)
    del job["spec"]["clusterSelector"]
    assert "one of spec.clusterSelector or spec.rayClusterSpec is required" in check_rayjob(job)
