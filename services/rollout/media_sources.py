"""Turn the ``video_data`` / ``image_data`` items of a request into frames and pixels, as SGLang 0.5.23 does.

Sources (``srt/utils/common.py`` ``_normalize_video_input`` / ``load_image``): a ``data:...;base64,``
URI, an ``http(s)://`` URL, a ``file://`` URI or an existing local file, else bare base64 of the
file. Anything else — ``s3://``, a path that does not exist here, an object item such as the old
``{"format": "frames"}`` — is refused with a ``MediaError`` naming it.

A video is decoded whole, then sampled and resized by SGLang's Qwen-VL rules
(``multimodal/processors/qwen_vl.py`` ``smart_nframes``, ``preprocess_video``, ``smart_resize``)
under the server's video config (``--mm-process-config``, default: the DataConfig, as
``videop2r.rollout.sglang_release.mm_process_config`` renders it for pods). Decoded sources are
kept in a small LRU cache, which ``/flush_cache`` empties.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from videop2r.data.media import MediaError
from videop2r.rollout.media import decode_video_bytes

# qwen_vl.py 0.5.23, lines 59-79
IMAGE_FACTOR = 28
FRAME_FACTOR = 2
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28
VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)
MAX_RATIO = 200


def _round(n: float, f: int) -> int:
    return round(n / f) * f


def _ceil(n: float, f: int) -> int:
    return math.ceil(n / f) * f


def _floor(n: float, f: int) -> int:
    return math.floor(n / f) * f


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """qwen_vl.py ``smart_resize``."""
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise MediaError("bad_size", f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
                                     f"got {max(height, width) / min(height, width)}")
    h_bar, w_bar = max(factor, _round(height, factor)), max(factor, _round(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar, w_bar = _floor(height / beta, factor), _floor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = _ceil(height * beta, factor), _ceil(width * beta, factor)
    return h_bar, w_bar


def smart_nframes(config: dict[str, Any], total_frames: int, video_fps: float) -> int:
    """qwen_vl.py ``smart_nframes``."""
    if "nframes" in config:
        nframes = _round(config["nframes"], FRAME_FACTOR)
    else:
        fps = config.get("fps", FPS)
        min_frames = _ceil(config.get("min_frames", FPS_MIN_FRAMES), FRAME_FACTOR)
        max_frames = _floor(config.get("max_frames", min(FPS_MAX_FRAMES, total_frames)), FRAME_FACTOR)
        nframes = total_frames / video_fps * fps
        nframes = _floor(min(min(max(nframes, min_frames), max_frames), total_frames), FRAME_FACTOR)
    if not FRAME_FACTOR <= nframes <= total_frames:
        raise MediaError("too_short", f"nframes should in interval [{FRAME_FACTOR}, {total_frames}], but got {nframes}.")
    return int(nframes)


def sample_video(frames: np.ndarray, video_fps: float, config: dict[str, Any]) -> tuple[np.ndarray, float]:
    """qwen_vl.py ``preprocess_video``: frame choice and bilinear resize of decoded frames (T, H, W, 3);
    returns the sampled frames and their rate (sampled frames / duration)."""
    import torch
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    total = int(frames.shape[0])
    nframes = smart_nframes(config, total, video_fps)
    index = np.unique(np.linspace(0, total - 1, num=nframes, dtype=np.int64))
    chosen = frames[index]
    sampled_fps = len(index) / (total / video_fps)
    height, width = int(chosen.shape[1]), int(chosen.shape[2])
    min_pixels = config.get("min_pixels", VIDEO_MIN_PIXELS)
    total_pixels = config.get("total_pixels", VIDEO_TOTAL_PIXELS)
    max_pixels = max(min(config.get("max_pixels", VIDEO_MAX_PIXELS), total_pixels / len(index) * FRAME_FACTOR),
                     int(min_pixels * 1.05))
    max_pixels = min(config.get("max_pixels", max_pixels), max_pixels)
    if "resized_height" in config and "resized_width" in config:
        size = smart_resize(config["resized_height"], config["resized_width"], IMAGE_FACTOR, min_pixels, max_pixels)
    else:
        size = smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
    if size == (height, width):
        return chosen, sampled_fps
    video = torch.from_numpy(np.ascontiguousarray(chosen)).permute(0, 3, 1, 2)
    video = TF.resize(video, list(size), interpolation=InterpolationMode.BILINEAR)
    return video.permute(0, 2, 3, 1).contiguous().numpy(), sampled_fps


def video_config_from(data_config: Any) -> dict[str, Any]:
    from videop2r.rollout.sglang_release import mm_process_config

    return mm_process_config(data_config)["video"]


class MediaSources:
    """Resolves request media items; thread-safe; `cache_items` decoded sources are kept."""

    def __init__(self, data_config: Any = None, storage_config: Any = None, cache_items: int = 32,
                 fetch_timeout_s: float = 10.0, video_config: dict[str, Any] | None = None) -> None:
        from videop2r.config import DataConfig

        self.data_config = data_config or DataConfig()
        self.video_config = dict(video_config) if video_config is not None else video_config_from(self.data_config)
        self.cache_items = cache_items
        self.fetch_timeout_s = fetch_timeout_s
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> int:
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
        return count

    def video(self, item: Any) -> tuple[np.ndarray, float]:
        """(frames uint8 (T, H, W, 3) as SGLang samples them, their sampled fps) of a ``video_data`` item."""
        if not isinstance(item, str):
            raise MediaError("invalid", f"video_data item must be a string (data: URI, http(s) URL, file or base64), "
                                        f"got {type(item).__name__}")
        return self._cached(("video", item), lambda: self._decode_video(item))

    def image(self, item: Any) -> np.ndarray:
        """uint8 (H, W, 3) of an ``image_data`` item."""
        if not isinstance(item, str):
            raise MediaError("invalid", f"image_data item must be a string (data: URI, http(s) URL, file or base64), "
                                        f"got {type(item).__name__}")
        return self._cached(("image", item), lambda: self._decode_image(item))

    def _cached(self, key: tuple[str, str], make: Any) -> Any:
        digest = key[0] + ":" + hashlib.sha256(key[1].encode()).hexdigest()
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return self._cache[digest]
        value = make()
        if self.cache_items > 0:
            with self._lock:
                self._cache[digest] = value
                while len(self._cache) > self.cache_items:
                    self._cache.popitem(last=False)
        return value

    def _decode_video(self, source: str) -> tuple[np.ndarray, float]:
        frames, fps = decode_video_bytes(self._readable(source, "video_data"), "video_data")
        return sample_video(frames, fps, self.video_config)

    def _decode_image(self, source: str) -> np.ndarray:
        import io

        from PIL import Image, UnidentifiedImageError

        data = self._readable(source, "image_data")
        try:
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                return np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise MediaError("corrupt", f"image_data: cannot decode the image ({exc})") from None

    def _readable(self, source: str, what: str) -> str | bytes:
        """A local path or the bytes of `source`, by SGLang's ``_normalize_video_input`` rules."""
        if source.startswith(("http://", "https://")):
            import httpx

            try:
                response = httpx.get(source, timeout=self.fetch_timeout_s, follow_redirects=True)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise MediaError("unreadable", f"{what}: cannot fetch {source[:120]}: {exc}") from None
            return response.content
        if source.startswith("data:"):
            _, _, payload = source.partition(",")
            return _b64(payload, what)
        if source.startswith("file://"):
            path = unquote(urlparse(source).path)
            if not os.path.isfile(path):
                raise MediaError("missing", f"{what}: no such file {path!r}")
            return path
        if os.path.isfile(unquote(urlparse(source).path)):
            return source
        try:
            return _b64(source, what)
        except MediaError:
            raise MediaError("invalid", f"{what}: {source[:80]!r} is not a data: URI, an http(s) URL, an existing "
                                        f"file here or base64 data (SGLang reads no s3:// sources)") from None


def _b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("invalid", f"{what}: not valid base64") from None
    if not data:
        raise MediaError("empty", f"{what}: empty")
    return data
