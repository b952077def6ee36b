"""The media codec of rollout requests: lossless data: URIs of the learner's exact frames."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from services.rollout.media_sources import MediaSources
from videop2r.config import DataConfig
from videop2r.data.media import MediaError
from videop2r.rollout.media import decode_video_bytes, encode_image_uri, encode_video_bytes, encode_video_uri
from videop2r.rollout.payload import media_source, video_item


@pytest.mark.parametrize("fps", [2.0, 1.5, 0.5])
def test_video_round_trip_is_bit_exact_at_the_sampled_rate(fps):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 56, 84, 3), dtype=np.uint8)  # noise: the worst case for a codec
    back, rate = decode_video_bytes(encode_video_bytes(frames, fps))
    assert np.array_equal(back, frames) and rate == pytest.approx(fps)


def test_server_keeps_the_learners_frames_under_the_pod_video_config():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (8, 84, 84, 3), dtype=np.uint8)
    media = MediaSources(DataConfig(fps=2.0, min_frames=4, max_frames=8, video_min_pixels=84 * 84,
                                    video_max_pixels=84 * 84))
    got, fps = media.video(encode_video_uri(frames, 2.0))
    assert np.array_equal(got, frames) and fps == pytest.approx(2.0)


def test_server_resamples_like_sglang_with_its_defaults():
    """SGLang's default video config (fps 2, min 128·28² pixels) upsamples an 84×84 clip: the
    embedded server does the same, so a pod launched without the config is visibly different."""
    frames = np.zeros((8, 84, 84, 3), np.uint8)
    got, _ = MediaSources(video_config={}).video(encode_video_uri(frames, 2.0))
    assert got.shape[1] * got.shape[2] >= 128 * 28 * 28


def test_image_uri_is_png_and_exact():
    image = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    uri = encode_image_uri(image)
    assert uri.startswith("data:image/png;base64,")
    assert np.array_equal(MediaSources().image(uri), image)


@pytest.mark.parametrize("source, message", [
    ("s3://bucket/clip.mp4", "s3://"),
    ("/only/on/the/driver.mp4", "not a path on this machine"),
])
def test_client_refuses_sources_a_pod_cannot_read(source, message):
    with pytest.raises(MediaError, match=message):
        video_item(source)


def test_client_passes_pod_readable_sources():
    assert media_source("https://minio:9000/b/clip.mp4?X-Amz-Signature=x").startswith("https://")


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28, 3), np.float32), np.zeros((28, 28, 3), np.uint8)])
def test_encode_refuses_non_frames(bad):
    with pytest.raises(MediaError, match="uint8"):
        encode_video_bytes(bad, 2.0)


def test_decode_refuses_garbage_with_a_message():
    with pytest.raises(MediaError, match="cannot decode"):
        decode_video_bytes(base64.b64decode("aGVsbG8="))


def test_rollout_media_errors_are_the_data_layers_with_a_reason():
    # One MediaError for reader, eval and rollout: a handler of either catches both, and the
    # rollout's refusals carry a reason like the reader's skips (and a ValueError, as before).
    import pickle

    import videop2r.rollout.media as rollout_media

    assert rollout_media.MediaError is MediaError and issubclass(MediaError, ValueError)
    with pytest.raises(MediaError) as refused:
        video_item("s3://bucket/clip.mp4")
    assert refused.value.reason == "invalid"
    with pytest.raises(MediaError) as garbage:
        decode_video_bytes(base64.b64decode("aGVsbG8="))
    assert garbage.value.reason == "corrupt"
    copy = pickle.loads(pickle.dumps(garbage.value))
    assert (copy.reason, str(copy)) == ("corrupt", str(garbage.value))
