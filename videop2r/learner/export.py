"""HF weights of the sharded policy, streamed parameter by parameter, for the rollout servers to load.

An export at `uri` (a directory on the shared weights volume, or an object-store URI) is an
ordinary Hugging Face checkpoint — config, bf16 safetensors in the standard Qwen2.5-VL key layout
that SGLang/vLLM/transformers load, tokenizer, processor, chat template — plus
`weight_version.json`, written last: a reader that finds `weight_version.json` finds the complete
set, and the version in it is what rollouts generated from these weights carry.

No rank ever holds the whole state: each parameter is all-gathered on its own (`full_tensor`),
rank 0 casts it to the export dtype and adds it to a bucket of `learner.export_bucket_mb`; a full
bucket becomes one safetensors file, uploaded and deleted locally before the next one fills.
Keys are renamed to the checkpoint layout by transformers' own `revert_weight_conversion`.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from videop2r.config import StorageConfig
from videop2r.storage import ObjectNotFound, ObjectStore, open_store

log = logging.getLogger(__name__)

#: written last; its presence marks a complete export
WEIGHT_VERSION_FILE = "weight_version.json"
INDEX_FILE = "model.safetensors.index.json"
_NOT_COPIED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
# the source's model card and run config describe the source, not this export (videop2r.train.model_card)
_NOT_COPIED_NAMES = {"config.json", "generation_config.json", "README.md", "videop2r-config.yaml", WEIGHT_VERSION_FILE}


def _processor_files(source_dir: Path) -> list[Path]:
    """Tokenizer / processor / template files of the source checkpoint (everything but weights and config)."""
    return sorted(
        path for path in source_dir.iterdir()
        if path.is_file() and not path.name.startswith(".")
        and path.name not in _NOT_COPIED_NAMES and not path.name.endswith(_NOT_COPIED_SUFFIXES)
    )


def _tied_keys(model: nn.Module) -> set[str]:
    """Parameters that are another parameter (tied lm_head): safetensors stores them once."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if not (getattr(config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False)):
        return set()
    return set(getattr(model, "_tied_weights_keys", None) or {})


def _checkpoint_names(model: nn.Module, bucket: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Module keys → the checkpoint's original key layout (what save_pretrained writes)."""
    from transformers.core_model_loading import revert_weight_conversion

    return dict(revert_weight_conversion(model, bucket))


def stream_state(model: nn.Module, dtype: torch.dtype, bucket_bytes: int,
                 write: Callable[[dict[str, torch.Tensor]], None]) -> int:
    """All-gather the parameters one at a time; on rank 0 hand `write` buckets of ≤ bucket_bytes
    (CPU, `dtype`, checkpoint key names). Collective; returns the bytes written (rank 0)."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    skip = _tied_keys(model)
    bucket: dict[str, torch.Tensor] = {}
    size = total = 0
    for key, value in model.state_dict().items():
        if key in skip:
            continue
        full = value.full_tensor() if hasattr(value, "full_tensor") else value  # collective for DTensors
        if rank != 0:
            del full
            continue
        tensor = full.detach().to(dtype) if full.is_floating_point() else full.detach()
        bucket[key] = tensor.to("cpu", copy=True).contiguous()
        del full, tensor
        size += bucket[key].numel() * bucket[key].element_size()
        if size >= bucket_bytes:
            write(_checkpoint_names(model, bucket))
            total += size
            bucket, size = {}, 0
    if bucket and rank == 0:
        write(_checkpoint_names(model, bucket))
        total += size
    return total


def _stage_side_files(model: nn.Module, dtype: torch.dtype, source_dir: Path | None, staging: Path) -> None:
    """config.json (in the export dtype), generation_config.json and the processor's files."""
    config = copy.deepcopy(model.config)
    config.dtype = str(dtype).removeprefix("torch.")
    config.save_pretrained(staging)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(staging)
    for path in _processor_files(source_dir) if source_dir else []:
        shutil.copy2(path, staging / path.name)


def drop_leftovers(store: ObjectStore, keep: list[str]) -> None:
    """Delete the top-level files of an older export that are not in `keep` (sub-folders stay)."""
    for info in list(store.list("")):
        if "/" not in info.key and info.key not in keep:
            store.delete(info.key)


def _mark_version(store: ObjectStore, files: list[str], version: int, dtype: torch.dtype,
                  extra: dict[str, Any] | None) -> dict[str, Any]:
    """Drop an older export's leftovers, then write the marker that vouches for `files`."""
    drop_leftovers(store, files)
    record = {"version": int(version), "files": sorted(files), "created": time.time(),
              "dtype": str(dtype).removeprefix("torch."), **(extra or {})}
    store.put_json(WEIGHT_VERSION_FILE, record)
    return record


def export_hf_weights(
    model: nn.Module,
    source_dir: Path | None,
    uri: str,
    version: int,
    dtype: torch.dtype,
    storage: StorageConfig | None = None,
    extra: dict[str, Any] | None = None,
    bucket_mb: int = 512,
) -> dict[str, Any]:
    """Publish the policy as an HF checkpoint at `uri` (+ `weight_version.json` = version); collective.

    Returns the version record on every rank.
    """
    from safetensors.torch import save_file

    rank = dist.get_rank() if dist.is_initialized() else 0
    record: dict[str, Any] = {}
    started = time.perf_counter()
    store = open_store(uri, storage) if rank == 0 else None
    weight_map: dict[str, str] = {}
    files: list[str] = []
    with tempfile.TemporaryDirectory(prefix="videop2r-export-") as tmp:
        staging = Path(tmp)
        if store is not None:
            store.delete(WEIGHT_VERSION_FILE)  # the old marker must not vouch for files being replaced

        pending: list[str] = []  # the last bucket written, uploaded once the next one exists

        def upload(name: str, as_name: str | None = None) -> None:
            store.put_file(as_name or name, staging / name)
            (staging / name).unlink()
            files.append(as_name or name)

        def write(bucket: dict[str, torch.Tensor]) -> None:
            name = f"model-{len(files) + len(pending) + 1:05d}.safetensors"
            save_file(bucket, str(staging / name), metadata={"format": "pt"})
            weight_map.update({key: name for key in bucket})
            if pending:
                upload(pending.pop())
            pending.append(name)

        total = stream_state(model, dtype, bucket_mb * 2**20, write)
        if store is not None:
            if pending and not files:  # one bucket: an unsharded checkpoint, as save_pretrained writes it
                upload(pending.pop(), "model.safetensors")
            else:
                if pending:
                    upload(pending.pop())
                index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
                (staging / INDEX_FILE).write_text(json.dumps(index, indent=2))
            _stage_side_files(model, dtype, source_dir, staging)
            for path in sorted(staging.iterdir()):
                store.put_file(path.name, path)
                files.append(path.name)
    if store is not None:
        record = _mark_version(store, files, version, dtype, extra)
        log.info("exported weight version %d to %s in %.1fs (%d files, streamed)", version, uri,
                 time.perf_counter() - started, len(files))
    shared = [record]
    if dist.is_initialized():
        dist.broadcast_object_list(shared, src=0)
    return shared[0]


def read_weight_version(uri: str, storage: StorageConfig | None = None) -> dict[str, Any] | None:
    """The version record of the export at `uri`, or None when no complete export is there."""
    try:
        return json.loads(open_store(uri, storage).get_bytes(WEIGHT_VERSION_FILE))
    except ObjectNotFound:
        return None
