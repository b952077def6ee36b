"""Qwen2.5-VL's reference rules for frame sampling and resizing, written for this project.

They reproduce the behaviour of `qwen_vl_utils.vision_process` (0.0.x, the preprocessing the
Qwen2.5-VL checkpoints and Video-R1 were trained with), so that a clip we decode gives the
model exactly the frames and the frame size the reference pipeline would give it:

- sides are multiples of 28 (patch 14 × spatial merge 2), the area lies in [min, max] pixels,
  the aspect ratio is kept as closely as possible (and may not exceed 200:1);
- the frame count comes from `fps` (clamped to [min_frames, max_frames] and to the clip
  length) or from a fixed `nframes`, and is always a multiple of FRAME_FACTOR = 2;
- the frames are spread evenly from the first to the last frame; the indices equal
  ``torch.linspace(0, total - 1, n).round()`` bit for bit (float32 steps with a fused
  multiply-add, halves rounded to even), computed here with numpy;
- a video's per-frame pixel cap also depends on a budget for the whole clip
  (`video_total_pixels`, default 90% of a 128k-token context) and on a hard cap of 768
  tokens per frame.

`sample_fps` is the rate of the *sampled* frames (nframes / total × source fps). The processor
must be given this rate, not the source rate: Qwen2.5-VL's temporal positions are
``second_per_grid_ts × tokens_per_second`` truncated to int, and with the source rate of a
24 fps clip every video token would get the same temporal position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from videop2r.config import DataConfig

PATCH_SIZE = 14
SPATIAL_MERGE_SIZE = 2
IMAGE_FACTOR = PATCH_SIZE * SPATIAL_MERGE_SIZE  # 28: sides are multiples of this
FRAME_FACTOR = 2  # frame counts are multiples of the temporal patch size
MAX_RATIO = 200
VIDEO_MAX_TOKENS_PER_FRAME = 768  # hard per-frame cap of the reference, whatever max_pixels says
# Reference default for the whole-clip budget: 90% of a 128k-token context.
DEFAULT_VIDEO_TOTAL_PIXELS = 128000 * IMAGE_FACTOR * IMAGE_FACTOR * 0.9


class SamplingRuleError(ValueError):
    """The rules cannot be met for this input.

    `reason` is ``too_short`` (too few frames for the wanted count) or ``bad_size`` (empty
    frames, an aspect ratio beyond 200:1, or pixel bounds that contradict each other).
    """

    def __init__(self, message: str, reason: str = "bad_size") -> None:
        super().__init__(message)
        self.reason = reason


def round_by_factor(number: float, factor: int) -> int:
    """Nearest multiple of `factor` (Python rounding: halves go to the even quotient)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: float = 4 * IMAGE_FACTOR**2,
    max_pixels: float = 16384 * IMAGE_FACTOR**2,
) -> tuple[int, int]:
    """(height, width) with both sides multiples of `factor` and area in [min_pixels, max_pixels].

    The sides are first rounded to the nearest multiple; if the area is then too large (small),
    both sides are scaled by the same factor and rounded down (up), which keeps the aspect ratio.
    """
    if height <= 0 or width <= 0:
        raise SamplingRuleError(f"frame size must be positive, got {height}x{width}")
    if max_pixels < min_pixels:
        raise SamplingRuleError(f"max_pixels ({max_pixels}) < min_pixels ({min_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise SamplingRuleError(f"aspect ratio {ratio:.1f} exceeds {MAX_RATIO} ({height}x{width})")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def smart_nframes(
    total_frames: int,
    video_fps: float,
    *,
    fps: float | None = 2.0,
    nframes: int | None = None,
    min_frames: int = 4,
    max_frames: int | None = None,
) -> int:
    """How many frames to sample from a clip of `total_frames` frames at `video_fps`.

    With `nframes` the count is that number rounded to a multiple of 2. Otherwise it is
    duration × `fps`, clamped to [min_frames (rounded up), max_frames (rounded down)] and to
    `total_frames`, then rounded down to a multiple of 2. `max_frames=None` means
    min(768, total_frames), as in the reference. Raises `SamplingRuleError` if the result is
    not in [2, total_frames] (e.g. a one-frame clip, or nframes larger than the clip).
    """
    if nframes is not None:
        count = round_by_factor(nframes, FRAME_FACTOR)
    else:
        if video_fps <= 0:
            raise SamplingRuleError(f"source fps must be positive, got {video_fps}")
        target_fps = 2.0 if fps is None else fps
        low = ceil_by_factor(min_frames, FRAME_FACTOR)
        high = floor_by_factor(min(768, total_frames) if max_frames is None else max_frames, FRAME_FACTOR)
        wanted = total_frames / video_fps * target_fps
        count = floor_by_factor(min(min(max(wanted, low), high), total_frames), FRAME_FACTOR)
    if not FRAME_FACTOR <= count <= total_frames:
        raise SamplingRuleError(
            f"cannot sample {count} frames from a clip of {total_frames} frames "
            f"(need {FRAME_FACTOR} <= frames <= total)",
            reason="too_short",
        )
    return count


def linspace_indices(start: int, end: int, count: int) -> list[int]:
    """Indices equal to ``torch.linspace(start, end, count).round().long().tolist()``.

    torch computes the points in float32: step = (end - start) / (count - 1) in float32, the
    first half as start + step·i and the second half as end − step·(count − 1 − i), each with
    one rounding (a fused multiply-add). The float64 product of two float32 numbers is exact,
    so one float64 operation followed by a cast to float32 reproduces that single rounding.
    """
    if count < 1:
        return []
    if count == 1:
        return [int(np.round(np.float32(start)))]
    start32, end32 = np.float32(start), np.float32(end)
    step = np.float64(np.float32((end32 - start32) / np.float32(count - 1)))
    i = np.arange(count, dtype=np.float64)
    points = np.where(i < count // 2, np.float64(start32) + step * i, np.float64(end32) - step * (count - 1 - i))
    return np.round(points.astype(np.float32)).astype(np.int64).tolist()


def video_pixel_bounds(nframes: int, config: DataConfig) -> tuple[int, float]:
    """(min_pixels, max_pixels) per frame for a clip sampled to `nframes` frames.

    The per-frame maximum is the smallest of: the configured `video_max_pixels`, the hard cap
    of 768 tokens, and the clip budget `video_total_pixels` shared by the frames (times 2, the
    frames per temporal patch) — but never below 1.05 × min_pixels.
    """
    total = config.video_total_pixels if config.video_total_pixels is not None else DEFAULT_VIDEO_TOTAL_PIXELS
    cap = VIDEO_MAX_TOKENS_PER_FRAME * IMAGE_FACTOR * IMAGE_FACTOR
    budget = max(min(cap, total / nframes * FRAME_FACTOR), int(config.video_min_pixels * 1.05))
    return config.video_min_pixels, min(config.video_max_pixels, budget)


@dataclass(frozen=True)
class VideoSamplingPlan:
    """Which frames to take from a clip and the size to resize them to."""

    frame_indices: list[int]
    height: int  # resized frame height, multiple of 28
    width: int  # resized frame width, multiple of 28
    sample_fps: float  # rate of the sampled frames: nframes / total_frames × source fps
    total_frames: int
    source_fps: float

    @property
    def nframes(self) -> int:
        return len(self.frame_indices)


def plan_video_sampling(
    total_frames: int, source_fps: float, height: int, width: int, config: DataConfig
) -> VideoSamplingPlan:
    """Frame indices, output size and sampled rate for a clip, by the reference rules.

    `config.nframes`, when set, wins over `config.fps` (the reference accepts only one).
    """
    if total_frames < 1:
        raise SamplingRuleError(f"clip has {total_frames} frames", reason="too_short")
    count = smart_nframes(
        total_frames,
        source_fps,
        fps=config.fps,
        nframes=config.nframes,
        min_frames=config.min_frames,
        max_frames=config.max_frames,
    )
    indices = linspace_indices(0, total_frames - 1, count)
    min_pixels, max_pixels = video_pixel_bounds(count, config)
    out_h, out_w = smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
    sample_fps = count / max(total_frames, 1e-6) * source_fps
    return VideoSamplingPlan(indices, out_h, out_w, sample_fps, total_frames, source_fps)


def image_size(height: int, width: int, config: DataConfig) -> tuple[int, int]:
    """Resized (height, width) of an image by the reference rules."""
    return smart_resize(height, width, IMAGE_FACTOR, config.image_min_pixels, config.image_max_pixels)
