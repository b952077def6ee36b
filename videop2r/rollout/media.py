"""How video and images travel in a ``/generate`` request (``video_data`` / ``image_data`` items).

Two kinds of item, both accepted by the embedded server:

- **Exact frames** (our extension, the training default): ``{"format": "frames", "frames": B64,
  "fps": 2.0, "compression": "zlib"}`` where B64 is base64 of an ``.npy`` uint8 array (T, H, W, 3)
  — the frames ``videop2r.data.video.load_video`` produced for the learner, already resized to
  multiples of 28 — and ``fps`` their sampled rate. The server rebuilds the pixel tensors with
  ``videop2r.prompting.encode_video`` on the same processor, so rollout and learner see
  bit-identical visual tokens. Images: ``{"format": "pixels", "image": B64, ...}`` of (H, W, 3).
  SGLang's own pre-processed form (``{"format": "processor_output", ...}``) carries tensors and
  is Engine-only, not an HTTP shape; this is the JSON-safe equivalent.
- **Sources** (SGLang's form): a string — a local path, ``http(s)://`` or ``s3://`` URI, a
  ``data:video/...;base64,`` URI or bare base64 of the file. The server decodes and samples it
  itself (``videop2r.data.video`` with its DataConfig), exactly as an SGLang pod would.

``encode_frames`` / ``encode_image`` build exact items (client side); ``decode_frames`` /
``decode_pixels`` read them back (server side) and raise ``MediaError`` with a message on any
malformed item.
"""

from __future__ import annotations

import base64
import binascii
import io
import zlib
from typing import Any

import numpy as np

FRAMES_FORMAT = "frames"
PIXELS_FORMAT = "pixels"
_COMPRESSIONS = (None, "zlib")
# A decoded array larger than this is refused (a malformed or hostile request).
MAX_DECODED_BYTES = 1 << 30


class MediaError(ValueError):
    """A ``video_data``/``image_data`` item that cannot be decoded; the message says why."""


def _pack(array: np.ndarray, compression: str | None) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    raw = buffer.getvalue()
    if compression == "zlib":
        raw = zlib.compress(raw, 1)
    return base64.b64encode(raw).decode("ascii")


def _unpack(text: Any, compression: Any, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise MediaError(f"{what}: expected a base64 string")
    if compression not in _COMPRESSIONS:
        raise MediaError(f"{what}: unknown compression {compression!r}; expected one of {_COMPRESSIONS}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"{what}: not valid base64 ({exc})") from None
    if compression == "zlib":
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(raw, MAX_DECODED_BYTES)
            if inflater.unconsumed_tail:
                raise MediaError(f"{what}: decompressed size above {MAX_DECODED_BYTES} bytes")
        except zlib.error as exc:
            raise MediaError(f"{what}: zlib data is corrupt ({exc})") from None
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MediaError(f"{what}: not an .npy array ({exc})") from None
    if array.dtype != np.uint8:
        raise MediaError(f"{what}: expected uint8 pixels, got {array.dtype}")
    return array


def encode_frames(frames: np.ndarray, fps: float, compression: str | None = "zlib") -> dict[str, Any]:
    """A ``video_data`` item carrying exact frames uint8 (T, H, W, 3) sampled at `fps`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if not fps or fps <= 0:
        raise MediaError(f"fps must be positive, got {fps!r}")
    return {"format": FRAMES_FORMAT, "frames": _pack(frames, compression), "fps": float(fps),
            "compression": compression}


def encode_image(image: np.ndarray, compression: str | None = "zlib") -> dict[str, Any]:
    """An ``image_data`` item carrying exact pixels uint8 (H, W, 3)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise MediaError(f"image must be uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    return {"format": PIXELS_FORMAT, "image": _pack(image, compression), "compression": compression}


def decode_frames(item: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(frames uint8 (T, H, W, 3), fps) of an exact-frames item."""
    frames = _unpack(item.get("frames"), item.get("compression"), "video_data frames")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise MediaError(f"video_data frames: expected shape (T, H, W, 3), got {tuple(frames.shape)}")
    fps = item.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise MediaError(f"video_data fps: expected a positive number, got {fps!r}")
    return frames, float(fps)


def decode_pixels(item: dict[str, Any]) -> np.ndarray:
    """uint8 (H, W, 3) of an exact-pixels item."""
    image = _unpack(item.get("image"), item.get("compression"), "image_data image")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise MediaError(f"image_data image: expected shape (H, W, 3), got {tuple(image.shape)}")
    return image
