"""The one place that names the SGLang release this project supports, and what follows from it.

The chart's ``sglangImage.tag``, the docs and the conformance suite
(``tests/rollout/test_sglang_conformance.py``, which pip-installs exactly this version) are checked
against these constants by ``tests/rollout/test_sglang_release.py``.

0.5.23 is chosen because its wheel pins ``torch==2.14.1`` (the learner's torch), it has
``sampling_params.sampling_seed`` (0.5.2 answers it with a TypeError → HTTP 500) and a request
schema gate that refuses unknown sampling fields.
"""

from __future__ import annotations

from typing import Any

SGLANG_VERSION = "0.5.23"
SGLANG_IMAGE_REPOSITORY = "lmsysorg/sglang"
SGLANG_IMAGE_TAG = f"v{SGLANG_VERSION}"

# Qwen2.5-VL's video placeholder: SGLang's Qwen-VL processor (multimodal/processors/qwen_vl.py,
# base_processor.py load_mm_data) splits the prompt on it and expands it to the grid's token count.
VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def mm_process_config(data_config: Any) -> dict[str, Any]:
    """SGLang's server-level ``--mm-process-config`` video settings (``qwen_vl.py`` reads ``fps``,
    ``min_frames``, ``max_frames``, ``min_pixels``, ``max_pixels``, ``total_pixels``) that make a pod
    keep the frames the learner sampled: same fps and frame limits, same pixel budget, so frames
    that are already multiples of 28 inside the budget are neither resampled nor resized."""
    video: dict[str, Any] = {
        "fps": float(data_config.fps),
        "min_frames": int(data_config.min_frames),
        "max_frames": int(data_config.max_frames),
        "min_pixels": int(data_config.video_min_pixels),
        "max_pixels": int(data_config.video_max_pixels),
    }
    if data_config.video_total_pixels:
        video["total_pixels"] = int(data_config.video_total_pixels)
    return {"video": video}
