"""RayJob manifests: load one from YAML, apply `--set key=value` edits and config overrides, and
check the rules KubeRay's admission enforces, before anything is sent to the API server.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

RAY_API_VERSION = "ray.io/v1"
CLUSTER_SELECTOR_KEY = "ray.io/cluster"
# KubeRay: a RayJob's name is the prefix of its RayCluster's (<= 53) and of the submitter Job's.
MAX_RAYJOB_NAME = 47
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PATH_PART = re.compile(r"^(?P<key>[^\[\]]*)(?P<indexes>(\[\d+\])*)$")


class ManifestError(ValueError):
    """A manifest, a `--set` edit or an override that cannot be used; the message says which."""


def load_rayjob(path: str | Path) -> dict[str, Any]:
    """The single ray.io/v1 RayJob in a YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such file")
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise ManifestError(f"{path}: expected exactly one RayJob object, found {len(documents)} documents")
    job = documents[0]
    if job.get("apiVersion") != RAY_API_VERSION or job.get("kind") != "RayJob":
        raise ManifestError(f"{path}: expected apiVersion {RAY_API_VERSION} kind RayJob, "
                            f"got {job.get('apiVersion')} {job.get('kind')}")
    return job


def split_set_path(path: str) -> list[str | int]:
    """`spec.a[0].b` -> ['spec', 'a', 0, 'b']; a backslash escapes a dot (`ray\\.io/cluster`)."""
    parts: list[str | int] = []
    for raw in re.split(r"(?<!\\)\.", path):
        match = _PATH_PART.match(raw.replace("\\.", "\0"))
        if not match or not match.group("key"):
            raise ManifestError(f"--set: bad path {path!r} (use a.b[0].c, escape dots in keys as \\.)")
        parts.append(match.group("key").replace("\0", "."))
        parts.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group("indexes")))
    return parts


def apply_set(obj: dict[str, Any], assignment: str) -> None:
    """Apply one helm-style `path=value` edit in place; the value is read as YAML (3, true, [a])."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise ManifestError(f"--set: {assignment!r} is not of the form key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = split_set_path(path)
    node: Any = obj
    for depth, part in enumerate(parts[:-1]):
        following = parts[depth + 1]
        node = _child(node, part, default=[] if isinstance(following, int) else {}, path=path)
    _assign(node, parts[-1], value, path)


def _child(node: Any, part: str | int, default: Any, path: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list):
            raise ManifestError(f"--set {path}: [{part}] indexes something that is not a list")
        if part > len(node):
            raise ManifestError(f"--set {path}: index {part} is past the end of a list of {len(node)}")
        if part == len(node):
            node.append(default)
        return node[part]
    if not isinstance(node, dict):
        raise ManifestError(f"--set {path}: {part!r} is below something that is not a mapping")
    if node.get(part) is None:
        node[part] = default
    return node[part]


def _assign(node: Any, part: str | int, value: Any, path: str) -> None:
    if isinstance(part, int):
        if not isinstance(node, list):
            raise ManifestError(f"--set {path}: [{part}] indexes something that is not a list")
        if part > len(node):
            raise ManifestError(f"--set {path}: index {part} is past the end of a list of {len(node)}")
        if part == len(node):
            node.append(value)
        else:
            node[part] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ManifestError(f"--set {path}: {part!r} is below something that is not a mapping")


def append_overrides(job: dict[str, Any], overrides: list[str]) -> None:
    """Append `a.b=c` config overrides to the entrypoint (each shell-quoted)."""
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise ManifestError(f"--override: {override!r} is not of the form a.b.c=value")
    if overrides:
        spec = job.setdefault("spec", {})
        entrypoint = spec.get("entrypoint") or ""
        if not entrypoint:
            raise ManifestError("--override needs a spec.entrypoint to append to")
        spec["entrypoint"] = " ".join([entrypoint, *(shlex.quote(o) for o in overrides)])


def check_rayjob(job: dict[str, Any]) -> list[str]:
    """The problems KubeRay's RayJob validation would refuse (an empty list = none)."""
    problems = []
    meta = job.get("metadata") or {}
    name = meta.get("name")
    generate = meta.get("generateName")
    if not name and not generate:
        problems.append("metadata.name or metadata.generateName is required")
    if name and (len(name) > MAX_RAYJOB_NAME or not _DNS1035_LABEL.match(name)):
        problems.append(f"metadata.name {name!r} must be a DNS-1035 label of at most {MAX_RAYJOB_NAME} characters")
    if not name and generate and (len(generate) + 5 > MAX_RAYJOB_NAME or not _DNS1035_LABEL.match(generate + "x")):
        problems.append(f"metadata.generateName {generate!r} must start a DNS-1035 label "
                        f"of at most {MAX_RAYJOB_NAME - 5} characters")
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return problems + ["spec is required"]
    if not str(spec.get("entrypoint") or "").strip():
        problems.append("spec.entrypoint is empty")
    selector = spec.get("clusterSelector") or {}
    if selector:
        if not selector.get(CLUSTER_SELECTOR_KEY):
            problems.append(f"spec.clusterSelector needs {CLUSTER_SELECTOR_KEY}: <RayCluster name>")
        if (spec.get("backoffLimit") or 0) > 0:
            problems.append("spec.backoffLimit is not allowed with clusterSelector")
        if spec.get("suspend"):
            problems.append("spec.suspend is not allowed with clusterSelector")
        if spec.get("submissionMode") == "SidecarMode":
            problems.append("submissionMode SidecarMode is not allowed with clusterSelector")
    elif not spec.get("rayClusterSpec"):
        problems.append("one of spec.clusterSelector or spec.rayClusterSpec is required")
    ttl = spec.get("ttlSecondsAfterFinished") or 0
    if ttl < 0:
        problems.append("spec.ttlSecondsAfterFinished must not be negative")
    if ttl > 0 and not spec.get("shutdownAfterJobFinishes"):
        problems.append("spec.ttlSecondsAfterFinished needs spec.shutdownAfterJobFinishes: true")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and deadline <= 0:
        problems.append("spec.activeDeadlineSeconds must be positive")
    return problems
