"""Fill a RayJob's submitter pod from the RayCluster it will run on.

KubeRay runs `ray job submit` in the pod of `spec.submitterPodTemplate` as given, image included
(only its *default* submitter takes the head's image: ray-operator/controllers/ray/common/job.go,
GetSubmitterTemplate / GetDefaultSubmitterContainer). The jobs in jobs/ leave the image out, so
the one the chart deployed (image.repository/tag, imagePullSecrets) is used instead of a
hard-coded one: `videop2r submit` reads the target RayCluster and copies the Ray head's image,
pull policy and pull secrets into the submitter. A clusterSelector that names no RayCluster is
refused before the RayJob is created (KubeRay would leave it waiting for ever).
"""

from __future__ import annotations

import copy
from typing import Any

from videop2r.k8s.manifest import CLUSTER_SELECTOR_KEY


class SubmitterError(ValueError):
    """The RayJob cannot be completed from its RayCluster; the message says why."""


def selected_cluster(job: dict[str, Any]) -> str | None:
    """The RayCluster name of `spec.clusterSelector`, or None for a job that brings its own cluster."""
    selector = ((job.get("spec") or {}).get("clusterSelector") or {})
    return selector.get(CLUSTER_SELECTOR_KEY) or None


def head_pod_spec(cluster: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = cluster["spec"]["headGroupSpec"]["template"]["spec"]
        spec["containers"][0]
    except (KeyError, IndexError, TypeError):
        name = (cluster.get("metadata") or {}).get("name")
        raise SubmitterError(f"RayCluster {name} has no head container to take the submitter image from") from None
    return spec


def fill_submitter(job: dict[str, Any], cluster: dict[str, Any]) -> list[str]:
    """Give the submitter container the head's image (and pull policy) when it has none, and add
    the head's imagePullSecrets; returns what was filled, for the user to see."""
    head = head_pod_spec(cluster)
    ray_container = head["containers"][0]
    spec = job.setdefault("spec", {})
    template = spec.get("submitterPodTemplate")
    if not template:
        return []  # KubeRay's default submitter already uses the head's image
    pod = template.setdefault("spec", {})
    containers = pod.get("containers") or []
    if not containers:
        raise SubmitterError("spec.submitterPodTemplate.spec.containers is empty")
    filled = []
    submitter = containers[0]
    if not submitter.get("image"):
        if not ray_container.get("image"):
            raise SubmitterError("the RayCluster's head container has no image")
        submitter["image"] = ray_container["image"]
        filled.append(f"image {submitter['image']}")
        if ray_container.get("imagePullPolicy") and not submitter.get("imagePullPolicy"):
            submitter["imagePullPolicy"] = ray_container["imagePullPolicy"]
    secrets = list(pod.get("imagePullSecrets") or [])
    for secret in head.get("imagePullSecrets") or []:
        if secret not in secrets:
            secrets.append(copy.deepcopy(secret))
            filled.append(f"imagePullSecret {secret.get('name')}")
    if secrets:
        pod["imagePullSecrets"] = secrets
    return filled
