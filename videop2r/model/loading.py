"""Load a Qwen2.5-VL checkpoint — ours, or a real 3B/7B — from a directory or an s3:// URI.

``resolve_model_path(uri)`` turns a URI into a local directory: a local path is checked and
returned; ``s3://bucket/prefix`` (or any store URI ``videop2r.storage.open_store`` accepts) is
downloaded once into a cache directory, completely or not at all (a marker file listing every
object and its size is written last; a changed listing means a fresh download).
``load_model`` / ``load_processor`` then call ``from_pretrained`` offline on that directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MARKER = ".videop2r-download.json"
# from_pretrained flips process-global switches (meta-device init, weight-init skipping): two
# threads loading at once corrupt each other's model ("Cannot copy out of meta tensor").
_LOAD_LOCK = threading.Lock()
_REMOTE_SCHEMES = ("s3://", "minio://", "gs://")


class ModelLoadError(RuntimeError):
    """A model location that does not hold a loadable checkpoint; the message names it."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("VIDEOP2R_MODEL_CACHE", Path.home() / ".cache" / "videop2r" / "models"))


def is_remote(uri: str) -> bool:
    return str(uri).startswith(_REMOTE_SCHEMES)


def resolve_model_path(uri: str | Path, storage_config: Any = None, cache_dir: str | Path | None = None) -> Path:
    """A local directory holding the checkpoint at `uri` (downloaded if remote)."""
    uri = str(uri)
    if not is_remote(uri):
        path = Path(uri).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"model path does not exist or is not a directory: {path}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"no config.json in {path}: not a Hugging Face checkpoint")
        return path
    return _download(uri, storage_config, Path(cache_dir) if cache_dir else default_cache_dir())


def _download(uri: str, storage_config: Any, cache_dir: Path) -> Path:
    from videop2r.storage import open_store

    store = open_store(uri, storage_config)
    listing = sorted((info.key, info.size) for info in store.list(""))
    if not any(key.rsplit("/", 1)[-1] == "config.json" for key, _ in listing):
        raise ModelLoadError(f"no config.json under {uri}: not a Hugging Face checkpoint")
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    marker = target / _MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("objects") == [list(item) for item in listing]:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    staging = target.with_name(target.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    log.info("downloading %s (%d objects) to %s", uri, len(listing), target)
    for key, _size in listing:
        store.get_file(key, staging / key)
    (staging / _MARKER).write_text(json.dumps({"uri": uri, "objects": listing}))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def load_model(path: str | Path, *, dtype: str = "float32", device: str | None = None,
               attn_implementation: str = "sdpa", storage_config: Any = None, cache_dir: str | Path | None = None):
    """``Qwen2_5_VLForConditionalGeneration`` in eval mode on `device` (CUDA if present, else CPU).

    `dtype`: a torch dtype name, or "auto" for the checkpoint's own (its tensors then stay mapped
    from the file until read).
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    local = resolve_model_path(path, storage_config, cache_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with _LOAD_LOCK:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                local, dtype=dtype if dtype == "auto" else getattr(torch, dtype),
                attn_implementation=attn_implementation, local_files_only=True
            )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a Qwen2.5-VL model from {local}: {exc}") from exc
    return model.to(device).eval()


def load_processor(path: str | Path, storage_config: Any = None, cache_dir: str | Path | None = None):
    """The checkpoint's ``Qwen2_5_VLProcessor`` (tokenizer + image and video processors)."""
    from transformers import AutoProcessor

    local = resolve_model_path(path, storage_config, cache_dir)
    try:
        with _LOAD_LOCK:
            processor = AutoProcessor.from_pretrained(local, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a processor from {local}: {exc}") from exc
    for part in ("tokenizer", "image_processor", "video_processor"):
        if getattr(processor, part, None) is None:
            raise ModelLoadError(f"processor in {local} has no {part}; expected a Qwen2.5-VL processor")
    return processor


def load_state_dict(path: str | Path, storage_config: Any = None, cache_dir: str | Path | None = None
                    ) -> dict[str, Any]:
    """All tensors of the checkpoint's safetensors files (for in-place weight reloads)."""
    from safetensors.torch import load_file

    local = resolve_model_path(path, storage_config, cache_dir)
    files = sorted(local.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"no *.safetensors files in {local}")
    state: dict[str, Any] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state
