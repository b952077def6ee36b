"""Turn the ``video_data`` / ``image_data`` items of a request into frames and pixels.

Exact items (``{"format": "frames" | "pixels", ...}``, see ``videop2r.rollout.media``) are
unpacked as they are. Source strings — a local path, ``http(s)://`` or ``s3://`` URI, a
``data:...;base64,`` URI, or bare base64 — are decoded and sampled with ``videop2r.data.video``
under the server's DataConfig, as an SGLang pod decodes what it is sent; decoded sources are
kept in a small LRU cache (the synthetic set asks several questions per clip), which
``/flush_cache`` empties.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from videop2r.rollout.media import FRAMES_FORMAT, PIXELS_FORMAT, MediaError, decode_frames, decode_pixels


class MediaSources:
    """Resolves request media items; thread-safe; `cache_items` decoded sources are kept."""

    def __init__(self, data_config: Any = None, storage_config: Any = None, cache_items: int = 32,
                 fetch_timeout_s: float = 60.0) -> None:
        from videop2r.config import DataConfig

        self.data_config = data_config or DataConfig()
        self.storage_config = storage_config
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
        """(frames uint8 (T, H, W, 3), sampled fps) of a ``video_data`` item."""
        if isinstance(item, dict):
            if item.get("format") != FRAMES_FORMAT:
                raise MediaError(f"video_data item: unknown format {item.get('format')!r}; expected "
                                 f"{FRAMES_FORMAT!r} or a path/URL/base64 string")
            return decode_frames(item)
        if isinstance(item, str):
            return self._cached(("video", item), lambda: self._decode_video(item))
        raise MediaError(f"video_data item must be a string or an object, got {type(item).__name__}")

    def image(self, item: Any) -> np.ndarray:
        """uint8 (H, W, 3) of an ``image_data`` item."""
        if isinstance(item, dict):
            if item.get("format") != PIXELS_FORMAT:
                raise MediaError(f"image_data item: unknown format {item.get('format')!r}; expected "
                                 f"{PIXELS_FORMAT!r} or a path/URL/base64 string")
            return decode_pixels(item)
        if isinstance(item, str):
            return self._cached(("image", item), lambda: self._decode_image(item))
        raise MediaError(f"image_data item must be a string or an object, got {type(item).__name__}")

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
        from videop2r.data.video import MediaError as DecodeError
        from videop2r.data.video import load_video

        try:
            clip = load_video(self._readable(source), self.data_config)
        except DecodeError as exc:
            raise MediaError(f"video_data: {exc.message}") from None
        return clip.frames, float(clip.sample_fps)

    def _decode_image(self, source: str) -> np.ndarray:
        from videop2r.data.video import MediaError as DecodeError
        from videop2r.data.video import load_image

        try:
            return load_image(self._readable(source), self.data_config)
        except DecodeError as exc:
            raise MediaError(f"image_data: {exc.message}") from None

    def _readable(self, source: str) -> str | bytes:
        """A local path or the bytes of the medium named by `source`."""
        if source.startswith("data:"):
            _, _, payload = source.partition("base64,")
            return _b64(payload, "data URI")
        if source.startswith(("http://", "https://")):
            import httpx

            try:
                response = httpx.get(source, timeout=self.fetch_timeout_s, follow_redirects=True)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise MediaError(f"cannot fetch {source}: {exc}") from None
            return response.content
        if source.startswith("s3://"):
            from videop2r.storage import ObjectNotFound, StorageError, open_store

            prefix, _, name = source.rpartition("/")
            try:
                return open_store(prefix, self.storage_config).get_bytes(name)
            except ObjectNotFound:
                raise MediaError(f"no such object: {source}") from None
            except StorageError as exc:
                raise MediaError(f"cannot read {source}: {exc}") from None
        if source.startswith("file://"):
            source = source[len("file://"):]
        if len(source) < 4096 and Path(source).exists():
            return source
        try:
            return _b64(source, "base64 media")
        except MediaError:
            raise MediaError(f"media source {source[:80]!r} is not an existing path, a URL or base64 data") from None


def _b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{what}: not valid base64") from None
    if not data:
        raise MediaError(f"{what}: empty")
    return data
