"""charts/videop2r rendered by the real helm: lint, the values schema, consistency checks, every
object validated (core kinds strictly, RayCluster against the KubeRay CRD, monitoring kinds by
structure), and NOTES."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from tests.k8s.chart_objects import SETS, kuberay_problems, monitoring_problems
from tests.k8s.conftest import CHART
from videop2r.k8s.crd_schema import validate_custom_resource

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.35"


# -- helm lint and the schema ----------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.stem if v else "default")
def test_helm_lint_strict(helm_run, values):
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    done = helm_run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_every_ci_value_set_is_rendered():
    assert sorted(v.stem.removesuffix("-values") for v in CI_VALUES) == sorted(s for s in SETS if s != "default")


@pytest.mark.parametrize(("assignment", "message"), [
    (["rewardJudge.judge=gpt"], "/rewardJudge/judge"),
    (["rollout.replicas=-1"], "/rollout/replicas"),
    (["rollot.replicas=2"], "additional properties 'rollot' not allowed"),
    (["rewardAccuracy.autoscaling.enabled=yes"], "/rewardAccuracy/autoscaling/enabled"),
    (["securityContext.allowPrivilegeEscalation=true"], "/securityContext/allowPrivilegeEscalation"),
    (["podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
    (["s3.external.enabled=true"], "/s3/external/existingSecret"),
    (["rollout.model.source=ftp"], "/rollout/model/source"),
    (["monitoring.serviceMonitors.interval=15"], "/monitoring/serviceMonitors/interval"),
    (["rewardJudge.resources.limits.cpu=two"], "/rewardJudge/resources/limits/cpu"),
    (["minio.auth.rootPassword=short"], "/minio/auth/rootPassword"),
    (["judge.external.url=judge.example.com"], "/judge/external/url"),
    (["rayCluster.learner.groupName=GPU_Workers"], "/rayCluster/learner/groupName"),
], ids=lambda a: a[0] if isinstance(a, list) else None)
def test_schema_rejects_invalid_values(helm_run, assignment, message):
    done = helm_run("template", "rel", str(CHART), *[f"--set={a}" for a in assignment])
    assert done.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


@pytest.mark.parametrize(("assignment", "message"), [
    (["judge.llm.enabled=false"], "rewardJudge.judge=openai needs a judge LLM"),
    (["rayCluster.learner.minReplicas=5"], "minReplicas is greater than maxReplicas"),
    (["rollout.model.source=pvc"], "model.claimName is required when model.source is pvc"),
    (["fullnameOverride=1st-run"], "is not a DNS-1035 label"),
    (["minio.enabled=false", "rayCluster.enabled=false", "rollout.model.source=s3"],
     "rollout.model.source=s3 needs the store"),
], ids=lambda a: a[0] if isinstance(a, list) else None)
def test_inconsistent_values_fail_with_a_message(helm_run, assignment, message):
    done = helm_run("template", "rel", str(CHART), *[f"--set={a}" for a in assignment])
    assert done.returncode != 0, f"{assignment} was accepted"
    assert message in done.stderr, done.stderr


# -- every object validates ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cached_core_schemas():
    """kubernetes-validate reads its (large) JSON schemas for every object: read each once."""
    import functools

    import kubernetes_validate.utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents",
                      functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents))
        yield


@pytest.mark.parametrize("value_set", SETS)
def test_core_objects_validate_strictly(rendered, cached_core_schemas, value_set):
    failures = []
    for obj in rendered[value_set].objects:
        if obj["apiVersion"].startswith(("ray.io/", "monitoring.coreos.com/")):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {getattr(exc, 'message', exc)}")
    assert not failures, "\n".join(failures)


def test_strict_core_validation_catches_unknown_fields(rendered, cached_core_schemas):
    deployment = json.loads(json.dumps(rendered["default"].of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("value_set", SETS)
def test_raycluster_validates_against_the_kuberay_crd(rendered, crd_schemas, value_set):
    clusters = rendered[value_set].of_kind("RayCluster")
    assert len(clusters) == 1
    violations = validate_custom_resource(clusters[0], crd_schemas)
    assert not violations, "\n".join(map(str, violations))
    assert not kuberay_problems(clusters[0])


@pytest.mark.parametrize("value_set", SETS)
def test_monitoring_objects_are_well_formed(rendered, value_set):
    objects = rendered[value_set].objects
    monitoring = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    kinds = sorted({o["kind"] for o in monitoring})
    assert kinds == ["PodMonitor", "PrometheusRule", "ServiceMonitor"]
    problems = [f"{o['kind']}/{o['metadata']['name']}: {p}" for o in monitoring for p in monitoring_problems(o, objects)]
    assert not problems, "\n".join(problems)
    for monitor in rendered[value_set].of_kind("ServiceMonitor"):
        assert all(e["honorLabels"] for e in monitor["spec"]["endpoints"]), "code labels must win over target labels"


def test_without_the_prometheus_operator_no_monitoring_objects(render_chart):
    objects = render_chart(None, monitoring=False).objects
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert [o for o in objects if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]]


def test_notes_render_for_every_value_set(helm_run):
    for values in [None, *CI_VALUES]:
        args = ["install", "rel", str(CHART), "--dry-run=client", "--namespace", "ml"]
        done = helm_run(*args, *(["-f", str(values)] if values else []))
        assert done.returncode == 0, done.stderr
        assert "videop2r submit jobs/pa-grpo.yaml" in done.stdout
        assert "monitoring.coreos.com/v1 is not served" in done.stdout
