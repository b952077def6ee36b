"""Step-N checkpoints on the object store, published so that "latest" only names complete ones.

Layout under `<checkpoint_prefix>/<run_name>/`:

    step-000012/hf/...            consolidated HF weights (what the rollout servers reload)
    step-000012/learner/...       model/optimizer/scheduler/RNG state of every learner worker
    step-000012/driver.json       step, data cursor, weight version, metrics history, config
    step-000012/driver-rng.pkl    the driver's random generator states
    step-000012/MANIFEST.json     every object above with its size — written after them
    latest                        {"step": 12, "prefix": ".../step-000012"} — written last

A crash at any point leaves "latest" naming the previous complete checkpoint (object writes
are atomic, and "latest" moves only after the manifest exists). `load_latest` re-checks the
manifest, and falls back to the newest step whose manifest checks out if "latest" is damaged.
"""

from __future__ import annotations

import logging
import pickle
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videop2r.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
LATEST = "latest"
_STEP_RE = re.compile(r"step-(\d+)/")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was asked for."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    prefix: str  # key prefix of the step directory, e.g. "checkpoints/demo/step-000012"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


def upload_dir(store: ObjectStore, prefix: str, local_dir: str | Path) -> int:
    """Put every file under `local_dir` at `prefix/<relative path>`; returns the file count."""
    local_dir = Path(local_dir)
    count = 0
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        store.put_file(f"{prefix}/{path.relative_to(local_dir).as_posix()}", path)
        count += 1
    return count


def download_prefix(store: ObjectStore, prefix: str, local_dir: str | Path) -> Path:
    """Copy every object under `prefix/` into `local_dir` (same relative layout)."""
    local_dir = Path(local_dir)
    prefix = prefix.rstrip("/") + "/"
    found = False
    for info in store.list(prefix):
        store.get_file(info.key, local_dir / info.key[len(prefix):])
        found = True
    if not found:
        raise CheckpointError(f"nothing stored under {store.uri}/{prefix}")
    return local_dir


class CheckpointStore:
    """The checkpoints of one run on one object store."""

    def __init__(self, store: ObjectStore, run_prefix: str, keep: int = 0) -> None:
        self.store = store
        self.run_prefix = run_prefix.strip("/")
        self.keep = keep

    def for_step(self, step: int) -> Checkpoint:
        return Checkpoint(step, f"{self.run_prefix}/step-{step:06d}")

    # -- writing

    def publish(self, ckpt: Checkpoint, driver_state: dict[str, Any], rng_state: Any = None) -> None:
        """Write the driver's part, then the manifest of everything under the step, then "latest".

        The learner and HF parts must already be written under `ckpt.prefix`.
        """
        self.store.put_json(ckpt.key("driver.json"), driver_state)
        self.store.put_bytes(ckpt.key("driver-rng.pkl"), pickle.dumps(rng_state))
        objects = {
            info.key[len(ckpt.prefix) + 1:]: info.size
            for info in self.store.list(ckpt.prefix + "/")
            if not info.key.endswith("/" + MANIFEST)
        }
        manifest = {"step": ckpt.step, "created": time.time(), "objects": objects}
        self.store.put_json(ckpt.key(MANIFEST), manifest)
        self.store.put_json(f"{self.run_prefix}/{LATEST}", {"step": ckpt.step, "prefix": ckpt.prefix})
        log.info("checkpoint step %d published at %s/%s", ckpt.step, self.store.uri, ckpt.prefix)
        self._prune(ckpt.step)

    def _prune(self, newest: int) -> None:
        if self.keep <= 0:
            return
        steps = sorted(self.steps())
        for step in steps[: max(0, len(steps) - self.keep)]:
            if step == newest:
                continue
            for info in list(self.store.list(self.for_step(step).prefix + "/")):
                self.store.delete(info.key)

    # -- reading

    def steps(self) -> list[int]:
        """Steps that have any object stored (complete or not)."""
        found = set()
        for info in self.store.list(self.run_prefix + "/step-"):
            match = _STEP_RE.search(info.key[len(self.run_prefix) + 1:])
            if match:
                found.add(int(match.group(1)))
        return sorted(found)

    def is_complete(self, ckpt: Checkpoint) -> bool:
        """The manifest exists and every object it lists is there with its size."""
        try:
            manifest = self.store.get_json(ckpt.key(MANIFEST))
        except (ObjectNotFound, ValueError):
            return False
        present = {info.key[len(ckpt.prefix) + 1:]: info.size for info in self.store.list(ckpt.prefix + "/")}
        return all(present.get(name) == size for name, size in manifest.get("objects", {}).items())

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint: the one "latest" names, else the newest that checks out."""
        try:
            pointer = self.store.get_json(f"{self.run_prefix}/{LATEST}")
            ckpt = Checkpoint(int(pointer["step"]), str(pointer["prefix"]))
            if self.is_complete(ckpt):
                return ckpt
            log.warning("'latest' names an incomplete checkpoint %s; scanning", ckpt.prefix)
        except ObjectNotFound:
            pass
        except (ValueError, KeyError, TypeError):
            log.warning("'latest' of %s is unreadable; scanning", self.run_prefix)
        for step in reversed(self.steps()):
            ckpt = self.for_step(step)
            if self.is_complete(ckpt):
                return ckpt
        return None

    def driver_state(self, ckpt: Checkpoint) -> tuple[dict[str, Any], Any]:
        state = self.store.get_json(ckpt.key("driver.json"))
        rng = pickle.loads(self.store.get_bytes(ckpt.key("driver-rng.pkl")))
        return state, rng

    def require_latest(self) -> Checkpoint:
        ckpt = self.latest()
        if ckpt is None:
            raise CheckpointError(f"--resume: no complete checkpoint under {self.store.uri}/{self.run_prefix}")
        return ckpt


def restore_driver_rng(rng_state: Any) -> None:
    """Put back the driver's Python and NumPy RNG states saved with a checkpoint."""
    import random

    import numpy as np

    if isinstance(rng_state, dict):
        if "python" in rng_state:
            random.setstate(rng_state["python"])
        if "numpy" in rng_state:
            np.random.set_state(rng_state["numpy"])
