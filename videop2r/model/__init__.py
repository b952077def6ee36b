"""Qwen2.5-VL models for VideoP2R: offline presets, building, and loading from a path or s3:// URI.

Public API (stable; the learner and the rollout server import it):

- ``init_model(preset, out_dir, corpus=None, *, seed=0, data_config=None, overwrite=False) -> Path``
  Build a randomly initialised checkpoint ("tiny" | "small", see ``PRESETS``) with an offline
  byte-level BPE tokenizer; CLI: ``videop2r model init --preset tiny --out DIR [--corpus RECORDS]``.
- ``load_model(path, *, dtype="float32", device=None, attn_implementation="sdpa", storage_config=None)``
  ``Qwen2_5_VLForConditionalGeneration`` in eval mode; `path` is a local dir or an s3:// URI
  (downloaded through ``videop2r.storage.open_store`` and cached). Real Qwen2.5-VL-3B/7B
  directories load through the same call.
- ``load_processor(path, storage_config=None)`` — the checkpoint's ``Qwen2_5_VLProcessor``.
- ``load_state_dict(path, storage_config=None) -> dict[str, Tensor]`` — raw safetensors tensors.
- ``resolve_model_path(uri, storage_config=None, cache_dir=None) -> Path`` — local directory.
- ``vision_token_ids(tokenizer) -> list[int]`` — vision special tokens that must never be sampled
  (a sampled ``<|video_pad|>`` breaks the learner's re-forward); the rollout server masks them.
- ``ModelLoadError`` — a location without a loadable checkpoint (message names the path).
- ``SPECIAL_TOKENS``, ``TEMPLATE_TAGS``, ``PRESETS``, ``ModelPreset``.
"""

from videop2r.model.loading import (
    ModelLoadError,
    load_model,
    load_processor,
    load_state_dict,
    resolve_model_path,
)
from videop2r.model.presets import PRESETS, ModelPreset, get_preset
from videop2r.model.tokenizer import SPECIAL_TOKENS, TEMPLATE_TAGS, vision_token_ids

__all__ = [
    "ModelLoadError",
    "ModelPreset",
    "PRESETS",
    "SPECIAL_TOKENS",
    "TEMPLATE_TAGS",
    "get_preset",
    "init_model",
    "load_model",
    "load_processor",
    "load_state_dict",
    "resolve_model_path",
    "vision_token_ids",
]


def init_model(*args, **kwargs):  # noqa: ANN002, ANN003 - see videop2r.model.builder.init_model
    """See ``videop2r.model.builder.init_model`` (imported lazily: it pulls in transformers)."""
    from videop2r.model.builder import init_model as _init_model

    return _init_model(*args, **kwargs)
