"""Our Qwen2.5-VL sampling/resizing rules against the reference `qwen_vl_utils.vision_process`."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videop2r.config import DataConfig
from videop2r.data import vision_rules as rules

vp = pytest.importorskip("qwen_vl_utils.vision_process", reason="qwen-vl-utils (test extra) is not installed")

FACTOR = 28


def _outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ValueError, AssertionError) as exc:  # the reference asserts min <= max
        return type(exc).__name__ if not isinstance(exc, ValueError) else "ValueError"


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(1, 5000),
    width=st.integers(1, 5000),
    min_tokens=st.integers(1, 800),
    max_tokens=st.integers(1, 20000),
)
def test_smart_resize_matches_reference(height: int, width: int, min_tokens: int, max_tokens: int) -> None:
    min_pixels, max_pixels = min_tokens * FACTOR * FACTOR, max_tokens * FACTOR * FACTOR
    ours = _outcome(rules.smart_resize, height, width, FACTOR, min_pixels, max_pixels)
    ref = _outcome(vp.smart_resize, height, width, FACTOR, min_pixels, max_pixels)
    if max_pixels < min_pixels:
        assert isinstance(ours, str) and isinstance(ref, str)
    else:
        assert ours == ref


def test_smart_resize_rules() -> None:
    h, w = rules.smart_resize(480, 854, FACTOR, 128 * 784, 128 * 784)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 128 * 784
    assert abs(w / h - 854 / 480) < 0.15
    assert rules.smart_resize(10, 10, FACTOR, 4 * 784, 16384 * 784) == (56, 56)  # upscaled to min_pixels
    with pytest.raises(rules.SamplingRuleError, match="aspect ratio"):
        rules.smart_resize(10, 2500)
    with pytest.raises(rules.SamplingRuleError):
        rules.smart_resize(0, 100)


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 20000),
    video_fps=st.sampled_from([1.0, 6.0, 8.0, 12.5, 15.0, 23.976023976023978, 24.0, 25.0, 29.97002997002997, 30.0, 60.0]),
    fps=st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.0]),
    min_frames=st.integers(2, 10),
    max_frames=st.one_of(st.none(), st.integers(2, 64)),
    nframes=st.one_of(st.none(), st.integers(1, 70)),
)
def test_smart_nframes_matches_reference(total, video_fps, fps, min_frames, max_frames, nframes) -> None:
    ele = {"nframes": nframes} if nframes is not None else {"fps": fps, "min_frames": min_frames}
    if nframes is None and max_frames is not None:
        ele["max_frames"] = max_frames
    ref = _outcome(vp.smart_nframes, ele, total_frames=total, video_fps=video_fps)
    ours = _outcome(rules.smart_nframes, total, video_fps, fps=fps, nframes=nframes, min_frames=min_frames,
                    max_frames=max_frames if nframes is None else None)
    assert ours == ref


@settings(max_examples=200, deadline=None)
@given(total=st.integers(2, 3_000_000), count=st.integers(1, 400))
def test_linspace_indices_bit_exact_with_torch(total: int, count: int) -> None:
    count = min(count * 2, total)
    expected = torch.linspace(0, total - 1, count).round().long().tolist()
    assert rules.linspace_indices(0, total - 1, count) == expected


def test_linspace_indices_exhaustive_small_clips() -> None:
    for total in range(2, 400):
        for count in range(2, min(total, 40) + 1, 2):
            assert rules.linspace_indices(0, total - 1, count) == torch.linspace(0, total - 1, count).round().long().tolist()


def test_linspace_indices_nonzero_start() -> None:
    for start, end, count in [(7, 311, 16), (100, 101, 2), (3, 99999, 768), (12, 12345, 33)]:
        assert rules.linspace_indices(start, end, count) == torch.linspace(start, end, count).round().long().tolist()


def test_pixel_bounds_cap_and_budget() -> None:
    # The configured maximum applies below the hard cap of 768 tokens per frame ...
    assert rules.video_pixel_bounds(16, DataConfig())[1] == 128 * 784
    # ... the cap applies above it ...
    big = DataConfig(video_min_pixels=16 * 784, video_max_pixels=4096 * 784)
    assert rules.video_pixel_bounds(16, big)[1] == 768 * 784
    # ... and a small clip budget shrinks each frame, but never below 1.05 × min_pixels.
    budget = DataConfig(video_min_pixels=16 * 784, video_max_pixels=768 * 784, video_total_pixels=64 * 784)
    assert rules.video_pixel_bounds(32, budget)[1] == int(16 * 784 * 1.05)
    budget = DataConfig(video_min_pixels=16 * 784, video_max_pixels=768 * 784, video_total_pixels=4096 * 784)
    assert rules.video_pixel_bounds(16, budget)[1] == 4096 * 784 / 16 * 2


def test_plan_uses_nframes_over_fps_and_reports_sampled_rate() -> None:
    plan = rules.plan_video_sampling(600, 30.0, 720, 1280, DataConfig(nframes=16))
    assert plan.nframes == 16 and plan.frame_indices[0] == 0 and plan.frame_indices[-1] == 599
    assert math.isclose(plan.sample_fps, 16 / 600 * 30)
    assert plan.height % 28 == 0 and plan.width % 28 == 0
    plan = rules.plan_video_sampling(600, 30.0, 720, 1280, DataConfig(fps=2.0, max_frames=64))
    assert plan.nframes == 40 and math.isclose(plan.sample_fps, 2.0)


def test_plan_errors_name_the_reason() -> None:
    with pytest.raises(rules.SamplingRuleError) as err:
        rules.plan_video_sampling(1, 30.0, 240, 320, DataConfig())
    assert err.value.reason == "too_short"
    with pytest.raises(rules.SamplingRuleError) as err:
        rules.plan_video_sampling(10, 30.0, 240, 320, DataConfig(nframes=16))
    assert err.value.reason == "too_short"
    with pytest.raises(rules.SamplingRuleError) as err:
        rules.plan_video_sampling(100, 30.0, 2, 1000, DataConfig())
    assert err.value.reason == "bad_size"


def test_image_size_uses_image_bounds() -> None:
    config = DataConfig(image_min_pixels=4 * 784, image_max_pixels=64 * 784)
    assert rules.image_size(1000, 1000, config) == vp.smart_resize(1000, 1000, 28, 4 * 784, 64 * 784)
    assert rules.image_size(20, 30, config) == vp.smart_resize(20, 30, 28, 4 * 784, 64 * 784)
