"""Consolidated HF weights of the sharded policy → object store, for the rollout servers to reload.

An export at `uri` is an ordinary Hugging Face checkpoint (config, safetensors in the standard
Qwen2.5-VL key layout that SGLang/vLLM/transformers load, tokenizer, processor, chat template)
plus `weight_version.json`, written last: a reader that finds `weight_version.json` finds the
complete set, and the version in it is what rollouts generated from these weights carry.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from videop2r.config import StorageConfig
from videop2r.storage import ObjectNotFound, open_store

log = logging.getLogger(__name__)

#: written last; its presence marks a complete export
WEIGHT_VERSION_FILE = "weight_version.json"
_NOT_COPIED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
_NOT_COPIED_NAMES = {"config.json", "generation_config.json", WEIGHT_VERSION_FILE}


def _processor_files(source_dir: Path) -> list[Path]:
    """Tokenizer / processor / template files of the source checkpoint (everything but weights and config)."""
    return sorted(
        path for path in source_dir.iterdir()
        if path.is_file() and not path.name.startswith(".")
        and path.name not in _NOT_COPIED_NAMES and not path.name.endswith(_NOT_COPIED_SUFFIXES)
    )


def export_hf_weights(
    model: nn.Module,
    source_dir: Path,
    uri: str,
    version: int,
    dtype: torch.dtype,
    storage: StorageConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gather the full state dict onto rank 0 (CPU) and publish it at `uri`; collective.

    Returns the version record (also stored as `weight_version.json`) on every rank.
    """
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    record: dict[str, Any] = {}
    if dist.get_rank() == 0:
        started = time.perf_counter()
        state = {key: value.to(dtype) if value.is_floating_point() else value for key, value in full.items()}
        store = open_store(uri, storage)
        store.delete(WEIGHT_VERSION_FILE)  # the old marker must not vouch for files being replaced
        with tempfile.TemporaryDirectory(prefix="videop2r-export-") as tmp:
            staging = Path(tmp)
            # save_pretrained writes the original Qwen2.5-VL key layout (what SGLang/vLLM load), config.json
            # and generation_config.json; 5 GB shards upload (and retry) in reasonable pieces
            model.save_pretrained(staging, state_dict=state, max_shard_size="5GB")
            for path in _processor_files(source_dir):
                shutil.copy2(path, staging / path.name)
            files = sorted(p.name for p in staging.iterdir() if p.is_file())
            for name in files:
                store.put_file(name, staging / name)
        for info in list(store.list("")):
            if "/" not in info.key and info.key not in files:  # leftovers of an older export
                store.delete(info.key)
        record = {"version": int(version), "files": files, "created": time.time(), "dtype": str(dtype)
                  .removeprefix("torch."), **(extra or {})}
        store.put_json(WEIGHT_VERSION_FILE, record)
        log.info("exported weight version %d to %s in %.1fs", version, uri, time.perf_counter() - started)
    del full
    shared = [record]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def read_weight_version(uri: str, storage: StorageConfig | None = None) -> dict[str, Any] | None:
    """The version record of the export at `uri`, or None when no complete export is there."""
    try:
        return json.loads(open_store(uri, storage).get_bytes(WEIGHT_VERSION_FILE))
    except ObjectNotFound:
        return None
