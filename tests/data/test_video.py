"""PyAV decoding + Qwen2.5-VL sampling against `qwen_vl_utils.fetch_video` (decord), and bad media.

Every test video shows its own frame index as 10 black/white bands in the top half, so the
tests can read back which source frame each returned frame really is.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videop2r.config import DataConfig
from videop2r.data.frame_decoding import SWS_INTERPOLATION
from videop2r.data.media import MediaError
from videop2r.data.video import VideoClip, load_image, load_video, load_videos
from videop2r.data.vision_rules import IMAGE_FACTOR

vp = pytest.importorskip("qwen_vl_utils.vision_process", reason="qwen-vl-utils (test extra) is not installed")
pytest.importorskip("decord", reason="decord (qwen-vl-utils[decord], test extra) is not installed")

BITS = 10


def _frame(index: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 96, dtype=np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            image[: height // 2, bit * width // BITS : (bit + 1) * width // BITS] = 255
        else:
            image[: height // 2, bit * width // BITS : (bit + 1) * width // BITS] = 0
    box = max(4, height // 8)
    x = (index * 3) % max(1, width - box)
    image[height - box - 2 : height - 2, x : x + box] = (230, 40, 40)
    return image


def _read_index(frame: np.ndarray) -> int:
    height, width = frame.shape[:2]
    row = height // 4
    value = 0
    for bit in range(BITS):
        column = int((bit + 0.5) * width / BITS)
        if frame[row, column].mean() > 128:
            value |= 1 << bit
    return value


def make_video(path: Path, *, codec: str = "libx264", fps: Fraction | int = 25, frames: int = 50,
               width: int = 176, height: int = 144, options: dict | None = None, pix_fmt: str = "yuv420p",
               movflags: str | None = None, bit_rate: int | None = None) -> Path:
    container_options = {"movflags": movflags} if movflags else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        stream.options = options or {}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame(i, height, width), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / Fraction(fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


VIDEOS = {
    # name: make_video arguments
    "h264_ntsc.mp4": dict(fps=Fraction(30000, 1001), frames=150, width=320, height=240, options={"preset": "veryfast"}),
    "h264_open_gop.mp4": dict(fps=25, frames=75, options={
        "preset": "veryfast", "x264-params": "keyint=10:min-keyint=10:scenecut=0:open-gop=1"}),
    "portrait.mkv": dict(fps=24, frames=60, width=144, height=256, options={"preset": "veryfast"}),
    "vp9.webm": dict(codec="libvpx-vp9", fps=60, frames=120, width=256, height=144,
                     options={"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4.avi": dict(codec="mpeg4", fps=15, frames=120, width=200, height=150, bit_rate=4_000_000),
    "long_gop20.mp4": dict(fps=10, frames=300, width=384, height=216, options={
        "preset": "veryfast", "x264-params": "keyint=20:min-keyint=20:bframes=3:b-pyramid=normal"}),
}

SETTINGS = {
    "defaults": DataConfig(),
    "nframes16": DataConfig(nframes=16),
    "fps4_wide_pixels": DataConfig(fps=4.0, max_frames=32, video_min_pixels=16 * 784, video_max_pixels=256 * 784),
    "odd_nframes_small_budget": DataConfig(nframes=7, video_min_pixels=4 * 784, video_max_pixels=64 * 784,
                                           video_total_pixels=100 * 784),
    "fps1_token_cap": DataConfig(fps=1.0, min_frames=3, max_frames=9, video_min_pixels=32 * 784,
                                 video_max_pixels=1024 * 784),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {name: make_video(root / name, **kwargs) for name, kwargs in VIDEOS.items()}


def _reference(path: Path, config: DataConfig, monkeypatch):
    monkeypatch.setattr(vp, "get_video_reader_backend", lambda: "decord")
    ele = {"video": str(path), "min_pixels": config.video_min_pixels, "max_pixels": config.video_max_pixels}
    if config.video_total_pixels is not None:
        ele["total_pixels"] = config.video_total_pixels
    if config.nframes is not None:
        ele["nframes"] = config.nframes
    else:
        ele.update(fps=config.fps, min_frames=config.min_frames, max_frames=config.max_frames)
    (video, meta), sample_fps = vp.fetch_video(ele, return_video_metadata=True, return_video_sample_fps=True)
    assert meta["video_backend"] == "decord", "reference fell back from decord"
    return video, meta, sample_fps


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", list(VIDEOS))
def test_matches_qwen_reference(videos, name: str, setting: str, monkeypatch) -> None:
    config = SETTINGS[setting]
    clip = load_video(videos[name], config)
    ref_video, meta, ref_sample_fps = _reference(videos[name], config, monkeypatch)

    assert clip.frame_indices == [int(i) for i in meta["frames_indices"]]
    assert clip.frames.shape == (ref_video.shape[0], ref_video.shape[2], ref_video.shape[3], 3)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape[1] % IMAGE_FACTOR == 0 and clip.frames.shape[2] % IMAGE_FACTOR == 0
    assert clip.total_frames == meta["total_num_frames"]
    assert math.isclose(clip.source_fps, meta["fps"], rel_tol=1e-9)
    assert math.isclose(clip.sample_fps, ref_sample_fps, rel_tol=1e-9)
    # The frames are those source frames (read back from the bands) ...
    assert [_read_index(f) for f in clip.frames] == clip.frame_indices
    # ... and look like the reference's (resize filters differ slightly: swscale vs torchvision),
    # where the reference got them right: decord's seek returns neighbouring frames in open GOPs.
    reference = ref_video.permute(0, 2, 3, 1).numpy().round().clip(0, 255).astype(np.uint8)
    if [_read_index(f) for f in reference] == clip.frame_indices:
        assert float(np.abs(clip.frames.astype(np.float32) - reference).mean()) < 8.0
    else:
        assert name == "h264_open_gop.mp4", "decord returned other frames than it reported"


@pytest.mark.parametrize("name", ["h264_open_gop.mp4", "long_gop20.mp4", "h264_ntsc.mp4"])
def test_partial_decoding_is_bit_exact(videos, name: str) -> None:
    """Skipping GOPs and unreferenced B-frames gives exactly the frames of a full decode."""
    with av.open(str(videos[name])) as container:
        everything = list(container.decode(video=0))
    for nframes in (2, 6, 16, 40):
        config = DataConfig(nframes=nframes, video_min_pixels=16 * 784, video_max_pixels=64 * 784)
        clip = load_video(videos[name], config)
        height, width = clip.frames.shape[1:3]
        expected = np.stack([
            everything[i].reformat(width=width, height=height, format="rgb24",
                                   interpolation=SWS_INTERPOLATION["bicubic"]).to_ndarray()
            for i in clip.frame_indices
        ])
        np.testing.assert_array_equal(clip.frames, expected)


def test_sampled_rate_keeps_temporal_positions_apart(videos) -> None:
    """Qwen2.5-VL (transformers 5.10): interval = tokens_per_second × int(2 / fps given to the processor)."""
    clip = load_video(videos["portrait.mkv"], DataConfig(fps=2.0))  # 24 fps source, 2.5 s -> 4 frames
    tokens_per_second, temporal_patch = 2, 2
    assert clip.frame_indices == [0, 20, 39, 59]
    assert math.isclose(clip.sample_fps, 4 / 60 * 24)
    assert tokens_per_second * int(temporal_patch / clip.sample_fps) > 0
    assert tokens_per_second * int(temporal_patch / clip.source_fps) == 0  # the trap: all positions equal


def test_bytes_and_file_objects(videos) -> None:
    path = videos["h264_open_gop.mp4"]
    config = DataConfig(nframes=8)
    from_path = load_video(path, config)
    from_bytes = load_video(path.read_bytes(), config)
    with path.open("rb") as handle:
        from_file = load_video(handle, config)
    from_buffer = load_video(io.BytesIO(path.read_bytes()), config)
    for other in (from_bytes, from_file, from_buffer):
        assert other.frame_indices == from_path.frame_indices
        np.testing.assert_array_equal(other.frames, from_path.frames)


# --------------------------------------------------------------------------- bad media


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    out: dict[str, Path] = {}
    (root / "empty.mp4").write_bytes(b"")
    out["empty"] = root / "empty.mp4"
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out["garbage"] = root / "garbage.mp4"
    whole = make_video(root / "whole.mp4", frames=100).read_bytes()  # index (moov) at the end
    (root / "cut_no_index.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    out["cut_no_index"] = root / "cut_no_index.mp4"
    fast = make_video(root / "fast.mp4", frames=100, movflags="faststart").read_bytes()  # index first
    (root / "truncated.mp4").write_bytes(fast[: len(fast) * 6 // 10])
    out["truncated"] = root / "truncated.mp4"
    damaged = bytearray(fast)
    middle = len(damaged) // 2
    damaged[middle : middle + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (root / "corrupt.mp4").write_bytes(bytes(damaged))
    out["corrupt"] = root / "corrupt.mp4"
    out["one_frame"] = make_video(root / "one_frame.mp4", frames=1)
    with av.open(str(root / "audio.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out["audio_only"] = root / "audio.wav"
    return out


@pytest.mark.parametrize(
    ("name", "reason", "needle"),
    [
        ("empty", "empty", "zero-length"),
        ("garbage", "unreadable", "cannot open"),
        ("cut_no_index", "unreadable", "truncated or not a media file"),
        ("truncated", "truncated", "only"),
        ("corrupt", "corrupt", "could not be decoded"),
        ("one_frame", "too_short", "1 frame"),
        ("audio_only", "no_video_stream", "no video stream"),
    ],
)
def test_bad_videos_raise_media_error(bad_media, name: str, reason: str, needle: str) -> None:
    with pytest.raises(MediaError) as err:
        load_video(bad_media[name], DataConfig())
    assert err.value.reason == reason
    assert needle in str(err.value) and str(bad_media[name]) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        load_video(tmp_path / "nope.mp4", DataConfig())
    assert err.value.reason == "missing" and "no such file" in str(err.value)
    for empty in (b"", io.BytesIO(b"")):
        with pytest.raises(MediaError) as err:
            load_video(empty, DataConfig())
        assert err.value.reason == "empty"
    with pytest.raises(MediaError) as err:
        load_video(tmp_path, DataConfig())
    assert err.value.reason == "unreadable"
    with pytest.raises(MediaError, match="shard-00001.tar:videos/x.mp4: zero-length"):
        load_video(io.BytesIO(b""), DataConfig(), name="shard-00001.tar:videos/x.mp4")


def test_too_few_frames_for_nframes(videos) -> None:
    with pytest.raises(MediaError) as err:
        load_video(videos["portrait.mkv"], DataConfig(nframes=64))  # the clip has 60 frames
    assert err.value.reason == "too_short"


def test_load_videos_keeps_order_and_yields_errors(videos, bad_media) -> None:
    sources = [videos["h264_open_gop.mp4"], bad_media["garbage"], videos["portrait.mkv"], "/no/such.mp4"]
    results = list(load_videos(sources, DataConfig(nframes=4), workers=2, prefetch=2))
    assert isinstance(results[0], VideoClip) and results[0].total_frames == 75
    assert isinstance(results[1], MediaError) and results[1].reason == "unreadable"
    assert isinstance(results[2], VideoClip) and results[2].total_frames == 60
    assert isinstance(results[3], MediaError) and results[3].reason == "missing"


# --------------------------------------------------------------------------- images


def _images(root: Path) -> dict[str, Path]:
    from PIL import Image

    rng = np.random.default_rng(2)
    out = {}
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(root / "photo.jpg", quality=90)
    out["jpeg_rgb"] = root / "photo.jpg"
    rgba = rng.integers(0, 256, (200, 300, 4), dtype=np.uint8)
    rgba[:50, :, 3] = 0  # a transparent band: composed over white
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    out["png_rgba"] = root / "alpha.png"
    Image.fromarray(rng.integers(0, 256, (50, 1000), dtype=np.uint8), "L").save(root / "wide.png")
    out["png_gray_wide"] = root / "wide.png"
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).convert("P").save(root / "tiny.gif")
    out["gif_palette_tiny"] = root / "tiny.gif"
    return out


@pytest.mark.parametrize(
    "config",
    [DataConfig(), DataConfig(image_min_pixels=16 * 784, image_max_pixels=64 * 784)],
    ids=["defaults", "small_bounds"],
)
def test_images_match_qwen_reference(tmp_path: Path, config: DataConfig) -> None:
    for name, path in _images(tmp_path).items():
        ours = load_image(path, config)
        ref = np.asarray(vp.fetch_image({"image": str(path), "min_pixels": config.image_min_pixels,
                                         "max_pixels": config.image_max_pixels}))
        assert ours.shape == ref.shape, name
        assert ours.dtype == np.uint8 and ours.shape[2] == 3
        np.testing.assert_array_equal(ours, ref, err_msg=name)
    photo = tmp_path / "photo.jpg"
    np.testing.assert_array_equal(load_image(photo.read_bytes(), config), load_image(photo, config))


def test_bad_images(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8) + 7).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"definitely not an image" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    cases = {"cut.png": ("truncated", "corrupt"), "junk.jpg": ("unreadable",), "empty.png": ("empty",),
             "absent.png": ("missing",)}
    for name, reasons in cases.items():
        with pytest.raises(MediaError) as err:
            load_image(tmp_path / name, DataConfig())
        assert err.value.reason in reasons, (name, err.value.reason, str(err.value))
