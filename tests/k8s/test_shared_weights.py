"""The chart's weight-sync wiring and SGLang probes, rendered by the real helm.

SGLang facts mirrored here (sglang 0.5.23, ``python/sglang/srt/``): ``/update_weights_from_disk``
loads ``model_path`` from the pod's own filesystem (``model_loader/loader.py``
``DefaultModelLoader._prepare_weights``; a non-local path goes to the model hub), so the learner
must export onto a volume every rollout pod mounts. ``/health`` and ``/health_generate`` are one
handler (``entrypoints/http_server.py`` 721-798) that generates one token and waits up to
``SGLANG_HEALTH_CHECK_TIMEOUT`` (default 20 s, line 218) unless
``SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION`` is false (``environ.py`` 344; then ``/health``
answers 503 while starting and 200 after, lines 746-749).
"""

from __future__ import annotations

from pathlib import Path

from videop2r.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "videop2r"
EVERYTHING = CHART / "ci" / "everything-values.yaml"


def pod_specs(result) -> dict[str, dict]:
    """component -> pod spec of every rollout Deployment and Ray pod."""
    found = {}
    for obj in result.objects:
        if obj["kind"] == "Deployment":
            found[obj["metadata"]["labels"]["app.kubernetes.io/component"]] = obj["spec"]["template"]["spec"]
        elif obj["kind"] == "RayCluster":
            found["ray-head"] = obj["spec"]["headGroupSpec"]["template"]["spec"]
            for group in obj["spec"]["workerGroupSpecs"]:
                found[f"ray-{group['groupName']}"] = group["template"]["spec"]
    return found


def weights_mounts(result) -> dict[str, tuple[str, bool, str]]:
    """component -> (mount path, read-only, claim) of the shared-weights volume."""
    mounts = {}
    for name, spec in pod_specs(result).items():
        mount = next((m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "shared-weights"), None)
        if mount is not None:
            volume = next(v for v in spec["volumes"] if v["name"] == "shared-weights")
            mounts[name] = (mount["mountPath"], bool(mount.get("readOnly", False)),
                            volume["persistentVolumeClaim"]["claimName"])
    return mounts


def driver_config(result, tmp_path: Path):
    path = tmp_path / f"{result.name}.yaml"
    path.write_text(result.get("ConfigMap", "rel-videop2r-config")["data"]["videop2r.yaml"])
    return load_config(path)


def test_default_values_create_the_claim_and_mount_it_rw_on_ray_ro_on_rollout(rendered, tmp_path):
    result = rendered["default"]
    claim = result.get("PersistentVolumeClaim", "rel-videop2r-weights")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert weights_mounts(result) == {
        "ray-head": ("/weights", False, "rel-videop2r-weights"),
        "ray-learner": ("/weights", False, "rel-videop2r-weights"),
        "rollout": ("/weights", True, "rel-videop2r-weights"),
    }
    config = driver_config(result, tmp_path)
    assert config.rollout.weights_dir == "/weights/policy"


def test_an_existing_claim_is_used_and_weights_dir_follows_the_mount_path(render_chart, tmp_path):
    result = render_chart(EVERYTHING, "--set", "sharedWeights.mountPath=/mnt/shared", "--set",
                          "sharedWeights.subdir=run-a")
    assert not result.of_kind("PersistentVolumeClaim")
    mounts = weights_mounts(result)
    assert set(mounts) == {"ray-head", "ray-learner", "rollout"}  # not the judge LLM
    assert {claim for _, _, claim in mounts.values()} == {"videop2r-weights"}
    assert {path for path, _, _ in mounts.values()} == {"/mnt/shared"}
    assert mounts["rollout"][1] is True and not mounts["ray-head"][1] and not mounts["ray-learner"][1]
    config = driver_config(result, tmp_path)
    assert config.rollout.weights_dir == "/mnt/shared/run-a"
    assert Path(config.rollout.weights_dir).is_relative_to("/mnt/shared")


def test_sglang_rollout_without_shared_weights_refuses_to_install(helm_run):
    for action in (["template"], ["install", "--dry-run=client"]):
        done = helm_run(*action, "rel", str(CHART), "--namespace", "ml", "--set", "sharedWeights.create=false")
        assert done.returncode != 0, action
        assert "rollout.enabled (SGLang rollout pods) needs the shared weights volume" in done.stderr
        assert "sharedWeights.claimName" in done.stderr and "ReadWriteMany" in done.stderr
    # without rollout pods nothing needs it: no claim, no mount, no weights_dir
    done = helm_run("template", "rel", str(CHART), "--namespace", "ml", "--set", "sharedWeights.create=false",
                    "--set", "rollout.enabled=false")
    assert done.returncode == 0, done.stderr
    assert "shared-weights" not in done.stdout and "weights_dir" not in done.stdout


def test_sglang_probes_survive_a_weight_update(rendered):
    for value_set in ("default", "everything", "cpu-only"):
        for obj in rendered[value_set].of_kind("Deployment"):
            container = obj["spec"]["template"]["spec"]["containers"][0]
            if container["name"] != "sglang":
                continue
            where = f"{value_set}: {obj['metadata']['name']}"
            env = {e["name"]: e.get("value") for e in container["env"]}
            # liveness and startup do not generate: a long weight load never restarts the pod
            assert env["SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION"] == "false", where
            assert container["livenessProbe"]["httpGet"]["path"] == "/health", where
            assert container["startupProbe"]["httpGet"]["path"] == "/health", where
            startup = container["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60, where  # model load
            # readiness generates one token, and waits longer than SGLang's own health timeout
            readiness = container["readinessProbe"]
            assert readiness["httpGet"]["path"] == "/health_generate", where
            assert readiness["timeoutSeconds"] > int(env["SGLANG_HEALTH_CHECK_TIMEOUT"]), where
            assert readiness["periodSeconds"] * readiness["failureThreshold"] >= 120, where


def test_probe_timeouts_follow_the_health_check_timeout(render_chart):
    result = render_chart(None, "--set", "rollout.probes.healthCheckTimeoutSeconds=45")
    container = result.get("Deployment", "rel-videop2r-rollout")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SGLANG_HEALTH_CHECK_TIMEOUT"] == "45" and container["readinessProbe"]["timeoutSeconds"] == 55
