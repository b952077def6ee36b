"""Build a randomly initialised Qwen2.5-VL checkpoint offline: tokenizer, processor, weights.

``init_model("tiny", out_dir, corpus=records)`` writes an ordinary Hugging Face directory —
``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer files with the
chat template, and the ``Qwen2_5_VLProcessor`` configs (``Qwen2VLImageProcessor``,
``Qwen2VLVideoProcessor``) — that ``from_pretrained`` loads with the hub offline. The directory is
written to a sibling staging path and renamed into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from videop2r.model.corpus import tokenizer_corpus
from videop2r.model.presets import build_config, get_preset
from videop2r.model.tokenizer import train_tokenizer

log = logging.getLogger(__name__)


def build_processor(tokenizer, data_config: Any = None):  # noqa: ANN001 - PreTrainedTokenizerFast
    """A ``Qwen2_5_VLProcessor`` around `tokenizer`, pixel budgets from `data_config` (DataConfig)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from videop2r.config import DataConfig

    data_config = data_config or DataConfig()
    image_processor = Qwen2VLImageProcessor(
        min_pixels=data_config.image_min_pixels, max_pixels=data_config.image_max_pixels,
        patch_size=14, temporal_patch_size=2, merge_size=2,
    )
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=data_config.video_min_pixels, max_pixels=data_config.video_max_pixels,
        patch_size=14, temporal_patch_size=2, merge_size=2,
        min_frames=data_config.min_frames, max_frames=data_config.max_frames,
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def init_model(preset: str, out_dir: str | Path, corpus: str | Path | None = None, *, seed: int = 0,
               data_config: Any = None, overwrite: bool = False) -> Path:
    """Write a fresh checkpoint of `preset` ("tiny" | "small") to `out_dir`; returns the path.

    `corpus`: Video-R1 records (JSON/JSONL file or directory) for the tokenizer; without it a
    built-in corpus is used. Same preset, corpus and seed give identical files.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    spec = get_preset(preset)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)")

    tokenizer = train_tokenizer(tokenizer_corpus(corpus), vocab_size=spec.vocab_size)
    config = build_config(spec, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=eos[1], do_sample=False
    )
    processor = build_processor(tokenizer, data_config)

    staging = out_dir.with_name(out_dir.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    params = sum(parameter.numel() for parameter in model.parameters())
    log.info("wrote %s model (%.2f M parameters, vocab %d) to %s", preset, params / 1e6, len(tokenizer), out_dir)
    return out_dir
