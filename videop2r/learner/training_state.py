"""Save and restore the learner's whole training state through the object store.

Format ("dcp-sharded"): model and optimizer go through torch.distributed.checkpoint (DCP), every
worker writing only its own shard, so saving costs no gather and a state saved by N workers loads
into M workers (DCP reshards on load). Layout under the state URI:

    dcp/.metadata, dcp/__<rank>_0.distcp    model + AdamW state (DCP, sharded)
    rank-<rank>.pt                           RNG states of that worker (torch, CUDA, numpy, random)
    scheduler.pt                             LR scheduler state
    learner_state.json                       step, world size, format — written last, after every
                                             worker's upload: a state without it is incomplete

Each worker stages its files in a local temporary directory and uploads them; on load each worker
downloads only the DCP files its load plan reads (`OwnShardsReader`): its own shard when the world
size is unchanged, the overlapping ones when it changed.
"""

from __future__ import annotations

import io
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from videop2r.config import StorageConfig
from videop2r.learner.actor import PolicyActor
from videop2r.storage import ObjectNotFound, open_store

log = logging.getLogger(__name__)

STATE_FILE = "learner_state.json"
FORMAT = "dcp-sharded"


class OwnShardsReader(FileSystemReader):
    """DCP reader that downloads only the files its rank's load plan reads (its own shard, plus the
    files holding the replicated entries it needs), instead of every rank fetching every shard."""

    def __init__(self, path: str, store: Any, prefix: str) -> None:
        super().__init__(path)
        self.store, self.prefix, self.fetched = store, prefix, set()
        store.get_file(f"{prefix}.metadata", Path(path) / ".metadata")

    def read_data(self, plan: Any, planner: Any) -> Any:
        for item in plan.items:
            name = self.storage_data[item.storage_index].relative_path
            if name not in self.fetched:
                self.store.get_file(f"{self.prefix}{name}", Path(self.path) / name)
                self.fetched.add(name)
        return super().read_data(plan, planner)


class LearnerStateError(RuntimeError):
    """No complete learner state where one was asked for (the message names the URI)."""


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> Any:
    # our own files (RNG tuples, numpy state): not loadable with weights_only
    return torch.load(io.BytesIO(data), weights_only=False)


def save_training_state(actor: PolicyActor, uri: str, storage: StorageConfig | None = None) -> dict[str, Any]:
    """Write model, optimizer, scheduler and RNG state of every worker at `uri`; collective.

    Returns the record stored in `learner_state.json` (on every rank).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    started = time.perf_counter()
    store = open_store(uri, storage)
    if rank == 0:
        store.delete(STATE_FILE)  # from here until the end, the state at `uri` reads as incomplete
    dist.barrier()
    model_state, optim_state = get_state_dict(actor.model, actor.optimizer)
    with tempfile.TemporaryDirectory(prefix=f"videop2r-state-{rank}-") as tmp:
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp)
        for path in sorted(Path(tmp).iterdir()):  # this rank's shard (+ .metadata on rank 0)
            store.put_file(f"dcp/{path.name}", path)
    store.put_bytes(f"rank-{rank}.pt", _to_bytes(_rng_state()))
    record = {"format": FORMAT, "step": actor.step, "world_size": world, "created": time.time()}
    dist.barrier()  # every shard is uploaded before the marker says so
    if rank == 0:
        store.put_bytes("scheduler.pt", _to_bytes(actor.scheduler.state_dict()))
        store.put_json(STATE_FILE, record)
        log.info("learner state of step %d saved to %s in %.1fs", actor.step, uri,
                 time.perf_counter() - started)
    dist.barrier()
    return record


def load_training_state(actor: PolicyActor, uri: str, storage: StorageConfig | None = None) -> dict[str, Any]:
    """Restore what `save_training_state` wrote at `uri` into `actor`; collective. Returns the record."""
    rank, world = dist.get_rank(), dist.get_world_size()
    store = open_store(uri, storage)
    try:
        record = store.get_json(STATE_FILE)
    except ObjectNotFound:
        raise LearnerStateError(f"no complete learner state at {uri} ({STATE_FILE} missing)") from None
    if record.get("format") != FORMAT:
        raise LearnerStateError(f"learner state at {uri} has format {record.get('format')!r}, "
                                f"expected {FORMAT!r}")
    model_state, optim_state = get_state_dict(actor.model, actor.optimizer)
    with tempfile.TemporaryDirectory(prefix=f"videop2r-state-{rank}-") as tmp:
        reader = OwnShardsReader(tmp, store, "dcp/")
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, storage_reader=reader)
        log.debug("rank %d read %s of the learner state at %s", rank, sorted(reader.fetched), uri)
    set_state_dict(actor.model, actor.optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optim"])
    _load_schedule(actor, _from_bytes(store.get_bytes("scheduler.pt")))
    actor.step = int(record["step"])
    if record["world_size"] == world:
        _set_rng_state(_from_bytes(store.get_bytes(f"rank-{rank}.pt")))
    elif rank == 0:
        log.warning("learner state at %s was saved by %d workers, loading into %d: RNG streams restart",
                    uri, record["world_size"], world)
    dist.barrier()
    return record


def _load_schedule(actor: PolicyActor, saved: dict[str, Any]) -> None:
    """Continue the schedule *as configured now* from the saved position.

    The optimizer state carries the lr of the saved run's last step; when a resume changes the
    total steps (e.g. "train longer") or the lr, that stale value would drive the next step (a
    cosine that ended at 0 would freeze the model), so the lr is recomputed at the saved position.
    """
    base_lrs = list(actor.scheduler.base_lrs)
    actor.scheduler.load_state_dict(saved)
    actor.scheduler.base_lrs = base_lrs
    position = actor.scheduler.last_epoch
    for group, base_lr, factor in zip(actor.optimizer.param_groups, base_lrs, actor.scheduler.lr_lambdas):
        group["lr"] = base_lr * factor(position)
    actor.scheduler._last_lr = [group["lr"] for group in actor.optimizer.param_groups]
