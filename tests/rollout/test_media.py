"""The exact-media wire codec of /generate (client encodes, server decodes)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from videop2r.rollout.media import MediaError, decode_frames, decode_pixels, encode_frames, encode_image


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_frames_round_trip_bit_exactly(compression):
    frames = np.random.default_rng(0).integers(0, 256, (4, 28, 56, 3), dtype=np.uint8)
    item = encode_frames(frames, 1.5, compression)
    back, fps = decode_frames(item)
    assert np.array_equal(back, frames) and back.dtype == np.uint8 and fps == 1.5


def test_image_round_trip():
    image = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    assert np.array_equal(decode_pixels(encode_image(image)), image)


def test_zlib_shrinks_synthetic_frames():
    frames = np.full((8, 84, 84, 3), 128, dtype=np.uint8)
    assert len(encode_frames(frames, 2.0)["frames"]) < len(encode_frames(frames, 2.0, None)["frames"]) / 20


def _npy(array) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("item, message", [
    ({"frames": "%%%", "fps": 2.0}, "base64"),
    ({"frames": base64.b64encode(b"hello").decode(), "fps": 2.0}, "npy"),
    ({"frames": _npy(np.zeros((2, 28, 28, 3), np.float32)), "fps": 2.0}, "uint8"),
    ({"frames": _npy(np.zeros((28, 28, 3), np.uint8)), "fps": 2.0}, "shape"),
    ({"frames": _npy(np.zeros((2, 28, 28, 3), np.uint8)), "fps": 0}, "fps"),
    ({"frames": _npy(np.zeros((2, 28, 28, 3), np.uint8)), "fps": "2"}, "fps"),
    ({"frames": _npy(np.zeros((2, 28, 28, 3), np.uint8)), "fps": 2.0, "compression": "lz4"}, "compression"),
    ({"frames": base64.b64encode(b"not zlib").decode(), "fps": 2.0, "compression": "zlib"}, "zlib"),
    ({"fps": 2.0}, "base64"),
])
def test_malformed_items_are_media_errors(item, message):
    with pytest.raises(MediaError, match=message):
        decode_frames(item)


def test_encoders_refuse_wrong_arrays():
    with pytest.raises(MediaError):
        encode_frames(np.zeros((2, 28, 28, 3), np.float32), 2.0)
    with pytest.raises(MediaError):
        encode_frames(np.zeros((2, 28, 28, 3), np.uint8), 0)
    with pytest.raises(MediaError):
        encode_image(np.zeros((28, 28), np.uint8))
