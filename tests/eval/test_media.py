"""Media at the inference settings: whole clips, segments, frame folders, appended question images."""

from __future__ import annotations

import numpy as np
import pytest

from videop2r.config import DataConfig, EvalConfig
from videop2r.data.media import MediaError
from videop2r.eval import BenchmarkSource, MediaRef
from videop2r.eval.clips import MediaLoader, inference_data_config
from videop2r.eval.media_parts import media_parts

SMALL = EvalConfig(frames=4, min_pixels=56 * 56, max_pixels=56 * 56)


def level(frame: np.ndarray) -> int:
    """The frame index a test clip encodes in its grey level (20 + 8·i), read off a corner."""
    return round((float(frame[40:, 40:].mean()) - 20) / 8)


def loader(release, name: str, keep_source: bool = False) -> MediaLoader:
    return MediaLoader(BenchmarkSource.open(str(release / name)), inference_data_config(SMALL), keep_source)


def test_paper_settings_are_the_defaults():
    config = inference_data_config(EvalConfig())
    assert (config.max_frames, config.video_max_pixels) == (32, 256 * 28 * 28)
    assert EvalConfig().temperature == 0.01 and EvalConfig().top_p == 0.001


def test_frames_spread_over_the_whole_clip_or_all_of_a_short_one(release):
    media = loader(release, "mvbench").load(MediaRef(keys=("video/star/Charades_v1_480/ZS9XR.mp4",)))
    assert media.frames.shape == (4, 56, 56, 3)
    assert [level(f) for f in media.frames] == [0, 8, 15, 23]  # linspace(0, 23, 4), Qwen2.5-VL's rule
    many = MediaLoader(
        BenchmarkSource.open(str(release / "mvbench")),
        inference_data_config(EvalConfig(frames=32, min_pixels=3136, max_pixels=3136)),
    )
    clip = many.load(MediaRef(keys=("video/star/Charades_v1_480/ZS9XR.mp4",)))
    assert clip.frames.shape[0] == 24  # 24-frame clip, 32 wanted: every frame, not an error


def test_bounded_segment_samples_inside_the_bound(release):
    # 8 fps, bound 0.5-2.0 s -> frames 4 ... 16, four of them spread over the segment
    media = loader(release, "mvbench").load(
        MediaRef(keys=("video/star/Charades_v1_480/ZS9XR.mp4",), bound=(0.5, 2.0))
    )
    assert [level(f) for f in media.frames] == [4, 8, 12, 16]
    assert media.source is None  # a segment is not the whole file: video_url falls back to images
    with pytest.raises(MediaError) as error:
        loader(release, "mvbench").load(
            MediaRef(keys=("video/star/Charades_v1_480/ZS9XR.mp4",), bound=(9.0, 10.0))
        )
    assert error.value.reason == "too_short"


def test_frame_folder_with_bound(release):
    ref = MediaRef(
        kind="frames",
        keys=("video/tvqa/frames_fps3_hq/castle_s07e04_seg02_clip_14",),
        bound=(1.0, 3.0),
        frames_fps=3.0,
    )
    media = loader(release, "mvbench").load(ref)
    # 3 fps, 1.0-3.0 s -> frames 3 ... 9 of 00001..00012.jpg; four spread over them
    assert media.frames.shape == (4, 56, 56, 3)
    assert [level(f) for f in media.frames] == [3, 5, 7, 9]


def test_question_image_is_appended_after_the_clip(release):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(buffer, format="PNG")
    media = loader(release, "videommmu").load(
        MediaRef(keys=("Art/validation_Art_Theory_1.mp4",), append_image=buffer.getvalue())
    )
    assert media.frames.shape == (6, 56, 56, 3)
    assert np.abs(media.frames[-1].astype(int) - (200, 30, 30)).max() < 8
    assert np.array_equal(media.frames[-1], media.frames[-2])


def test_missing_and_corrupt_media_raise_with_a_reason(release, tmp_path):
    with pytest.raises(MediaError) as missing:
        loader(release, "vsibench").load(MediaRef(keys=("scannetpp/nothing.mp4", "other/nothing.mp4")))
    assert missing.value.reason == "missing" and "scannetpp/nothing.mp4 or other/nothing.mp4" in str(
        missing.value
    )
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(MediaError) as corrupt:
        MediaLoader(BenchmarkSource.open(str(tmp_path)), DataConfig()).load(MediaRef(keys=("broken.mp4",)))
    assert corrupt.value.reason != "missing"


def test_chat_media_parts(release):
    media = loader(release, "mmvu", keep_source=True).load(MediaRef(keys=("videos/Chemistry/0.mp4",)))
    (video,) = media_parts(media, "video_url")
    assert video["type"] == "video_url" and video["video_url"]["url"].startswith("data:video/mp4;base64,")
    images = media_parts(media, "images")
    assert len(images) == 4 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    (frames,) = media_parts(media, "frames")
    # the exact sampled frames, losslessly, in SGLang's own video_url form (no private frames object)
    assert frames["type"] == "video_url" and frames["video_url"]["url"].startswith("data:video/quicktime;base64,")


def test_sampled_frames_as_a_small_video_file(release):
    from videop2r.eval.media_parts import clip_mp4, video_file_uri

    media = loader(release, "mvbench").load(
        MediaRef(keys=("video/star/Charades_v1_480/ZS9XR.mp4",), bound=(0.5, 2.0))
    )
    data = clip_mp4(media.frames, media.fps)
    decoded = MediaLoader(BenchmarkSource.open(str(release)), inference_data_config(SMALL)).load
    (release / "clip.mp4").write_bytes(data)
    again = decoded(MediaRef(keys=("clip.mp4",)))
    assert [level(f) for f in again.frames] == [4, 8, 12, 16]  # the same four frames, in order
    assert video_file_uri(media).startswith("data:video/mp4;base64,")
