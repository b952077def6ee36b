"""Driver-side weight sync through a shared volume: export, reload on every endpoint, prune.

One sync of version N:
1. the learner exports N into ``<rollout.weights_dir>/v<N>/`` (an HF checkpoint whose
   ``weight_version.json`` is written last), a directory on a volume that the learner's rank 0,
   the driver and every rollout pod mount (the chart's ``sharedWeights`` claim);
2. the driver checks that it sees the complete export (a volume that is not really shared fails
   here, with the path, instead of on every pod);
3. every endpoint gets ``POST /update_weights_from_disk`` with that *local* path — SGLang loads a
   directory on its own pod, never an ``s3://`` URI — and is retried
   ``rollout.weight_sync_retries`` times; an endpoint that still fails is out of rotation (no
   traffic) and re-synced in the background until it reports N; the step goes on with the others.
   When every endpoint fails, the run stops with ``WeightSyncFailed``;
4. ``v<k>`` folders no endpoint serves any more are removed (a stale endpoint keeps its version's
   folder until it has moved on).

The driver exports the version each endpoint reports (``videop2r_rollout_endpoint_weight_version``)
and whether it is in rotation (``videop2r_rollout_endpoint_in_rotation``). Checkpoints still go to
the object store: ``upload_export`` copies a finished export there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videop2r.config import StorageConfig, VideoP2RConfig
from videop2r.learner.export import WEIGHT_VERSION_FILE, drop_leftovers
from videop2r.metrics import metric
from videop2r.rollout import RolloutClient
from videop2r.rollout.client import WeightSyncError

log = logging.getLogger(__name__)

_VERSION_DIR = re.compile(r"^v(\d+)$")


class WeightSyncFailed(RuntimeError):
    """No rollout endpoint took the new weights (or the export is not where the pods look)."""


def weights_dir_of(config: VideoP2RConfig, run_dir: Path) -> Path:
    """`rollout.weights_dir`, or `<run_dir>/weights` when unset; absolute (the pods have other cwds)."""
    return Path(config.rollout.weights_dir or run_dir / "weights").expanduser().resolve()


def version_dir(weights_dir: Path, version: int) -> Path:
    return weights_dir / f"v{int(version)}"


@dataclass(frozen=True)
class SyncReport:
    version: int
    path: str
    updated: list[str]
    failed: dict[str, str]
    removed: list[str]
    seconds: float


class WeightSync:
    """Publishes learner weights to the rollout endpoints of one stage (module docstring).

    `export(target_dir, version)` is the learner's export (``Learner.export_weights``); `run`
    runs a coroutine on the stage's event loop (``asyncio.Runner.run``)."""

    def __init__(self, weights_dir: Path, client: RolloutClient, export: Callable[[str, int], Any],
                 run: Callable[[Any], Any], *, retries: int = 2, run_name: str = "", registry: Any = None) -> None:
        self.weights_dir = Path(weights_dir)
        self.client = client
        self.export = export
        self.run = run
        self.retries = retries
        self.run_name = run_name
        self.version: int | None = None
        self._version_gauge = metric("videop2r_rollout_endpoint_weight_version", registry)
        self._rotation_gauge = metric("videop2r_rollout_endpoint_in_rotation", registry)

    @classmethod
    def for_stage(cls, config: VideoP2RConfig, run_dir: Path, client: RolloutClient, export: Callable[[str, int], Any],
                  runner: asyncio.Runner) -> WeightSync:
        if config.rollout.endpoints and not config.rollout.weights_dir:
            log.warning("rollout.endpoints are set but rollout.weights_dir is not: weights go to %s, which only "
                        "servers on this machine can read", weights_dir_of(config, run_dir))
        return cls(weights_dir_of(config, run_dir), client, export, runner.run,
                   retries=config.rollout.weight_sync_retries, run_name=config.trainer.run_name)

    # -- one sync

    def publish(self, version: int) -> SyncReport:
        """Export `version` from the learner into `<weights_dir>/v<version>/` and sync it."""
        target = version_dir(self.weights_dir, version)
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.export(str(target), int(version))
        return self.sync(target, version)

    def sync(self, target: Path, version: int) -> SyncReport:
        """Make every endpoint load the complete export at `target` as `version`."""
        started = time.perf_counter()
        if not (target / WEIGHT_VERSION_FILE).is_file():
            raise WeightSyncFailed(
                f"weight export of version {version} is not visible at {target} on the driver (no "
                f"{WEIGHT_VERSION_FILE}): rollout.weights_dir must be on a volume shared by the learner's "
                f"rank 0, the driver and every rollout pod")
        try:
            results = self.run(self.client.update_weights(str(target), str(version), attempts=1 + self.retries))
        except WeightSyncError as exc:
            self.observe()
            raise WeightSyncFailed(
                f"no rollout endpoint took weight version {version} from {target} "
                f"(each tried {1 + self.retries} times): {exc}. Check that rollout.weights_dir "
                f"({self.weights_dir}) is mounted at the same path on the rollout pods") from exc
        self.version = int(version)
        failed = {r.endpoint: r.message for r in results if not r.success}
        for endpoint, message in failed.items():
            log.warning("rollout %s did not take weights v%d after %d attempt(s): %s; out of rotation until it "
                        "reports v%d (re-synced in the background)", endpoint, version, 1 + self.retries,
                        message, version)
        removed = self.observe()
        return SyncReport(int(version), str(target), [r.endpoint for r in results if r.success], failed, removed,
                          time.perf_counter() - started)

    # -- bookkeeping after a sync and after every step (background re-syncs land in between)

    def observe(self) -> list[str]:
        """Export each endpoint's reported version and rotation state; remove folders nobody serves."""
        stale = set(self.client.stale_endpoints)
        served = self.client.served_versions
        for endpoint, reported in served.items():
            value = float(reported) if (reported or "").isdigit() else -1.0
            self._version_gauge.labels(run=self.run_name, endpoint=endpoint).set(value)
            self._rotation_gauge.labels(run=self.run_name, endpoint=endpoint).set(0.0 if endpoint in stale else 1.0)
        return self.prune({int(v) for v in served.values() if (v or "").isdigit()})

    def prune(self, in_use: set[int]) -> list[str]:
        """Remove `v<k>` folders of versions that are neither current nor reported by an endpoint."""
        if self.version is None or not self.weights_dir.is_dir():
            return []
        keep = in_use | {self.version}
        removed = []
        for child in sorted(self.weights_dir.iterdir()):
            match = _VERSION_DIR.match(child.name)
            if match and child.is_dir() and int(match.group(1)) not in keep:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
        if removed:
            log.info("removed weight folders %s from %s (no endpoint serves them)", removed, self.weights_dir)
        return removed


def upload_export(local_dir: Path, uri: str, storage: StorageConfig | None = None) -> list[str]:
    """Copy a finished export to `uri` (a checkpoint's `hf/`), `weight_version.json` last, so the
    copy is complete exactly when its marker is there (like the learner's own export)."""
    from videop2r.storage import open_store

    local_dir = Path(local_dir)
    if not (local_dir / WEIGHT_VERSION_FILE).is_file():
        raise WeightSyncFailed(f"{local_dir}: not a complete export (no {WEIGHT_VERSION_FILE})")
    store = open_store(uri, storage)
    store.delete(WEIGHT_VERSION_FILE)
    files = sorted(p.name for p in local_dir.iterdir() if p.is_file() and p.name != WEIGHT_VERSION_FILE)
    for name in files:
        store.put_file(name, local_dir / name)
    drop_leftovers(store, files)
    store.put_file(WEIGHT_VERSION_FILE, local_dir / WEIGHT_VERSION_FILE)
    return [*files, WEIGHT_VERSION_FILE]


def download_export(uri: str, target: Path, storage: StorageConfig | None = None) -> Path:
    """Copy the complete export at `uri` (local or s3://) into `target`, `weight_version.json` last."""
    from videop2r.storage import open_store

    store = open_store(uri, storage)
    if not store.exists(WEIGHT_VERSION_FILE):
        raise WeightSyncFailed(f"{uri}: not a complete export (no {WEIGHT_VERSION_FILE})")
    target = Path(target)
    if "://" not in uri and Path(uri).resolve() == target.resolve():
        return target  # already where the pods look
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    names = [info.key for info in store.list("") if "/" not in info.key and info.key != WEIGHT_VERSION_FILE]
    for name in names:
        store.get_file(name, target / name)
    store.get_file(WEIGHT_VERSION_FILE, target / WEIGHT_VERSION_FILE)
    return target
