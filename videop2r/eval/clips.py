"""Load an item's medium at the inference settings: whole videos, segments, frame folders, images.

Whole videos go through `videop2r.data.video.load_video` (Qwen2.5-VL's sampling rules). The
other forms a benchmark ships are handled here with the same rules (`plan_video_sampling` over
the frames they contain):

- a segment ``[start, end]`` seconds of a video (MVBench's bounded tasks): the frames of the
  segment are counted from the demuxed packets, the wanted ones decoded in one pass;
- a folder of frame images at a known rate (MVBench's episodic reasoning), optionally bounded;
- a question image shown after the clip (VideoMMMU adaptation): resized to the frame size and
  appended twice, so the frame count stays a multiple of the temporal patch (2).

Anything unusable raises `videop2r.data.media.MediaError` with a `reason` (missing, unreadable,
too_short, ...): the runner records it as the item's failure, scored wrong.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videop2r.config import DataConfig, EvalConfig
from videop2r.data.media import MediaError
from videop2r.data.video import load_image, load_video
from videop2r.data.vision_rules import SamplingRuleError, plan_video_sampling
from videop2r.eval.items import MediaRef
from videop2r.eval.source import AnnotationError, BenchmarkSource
from videop2r.storage import ObjectNotFound, StorageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# "Every frame up to N": a rate no clip reaches, capped by max_frames (see inference_data_config).
_UNREACHABLE_FPS = 1e6
MIME = {
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def inference_data_config(eval_config: EvalConfig, base: DataConfig | None = None) -> DataConfig:
    """The DataConfig of the inference settings: `frames` frames × `max_pixels` pixels per clip.

    qwen-vl-utils' ``nframes=N`` fails on a clip shorter than N frames; its fps mode with a rate
    no clip reaches and ``max_frames=N`` picks the same N evenly spread frames from longer clips
    and every frame (rounded down to even) of shorter ones.
    """
    base = base or DataConfig()
    return DataConfig.model_validate(
        {
            **base.model_dump(),
            "fps": _UNREACHABLE_FPS,
            "nframes": None,
            "min_frames": 2,
            "max_frames": eval_config.frames,
            "video_min_pixels": eval_config.min_pixels,
            "video_max_pixels": eval_config.max_pixels,
        }
    )


@dataclass
class LoadedMedia:
    """An item's medium, decoded: `frames` uint8 (T, H, W, 3) at `fps`, or `image` uint8 (H, W, 3).

    `source` is the whole file (bytes) when the medium is exactly one file — what a ``video_url``
    request sends — and None for segments, frame folders and clips with an appended image.
    """

    kind: str  # video | image
    key: str
    frames: np.ndarray | None = None
    fps: float | None = None
    image: np.ndarray | None = None
    source: bytes | None = None

    @property
    def mime(self) -> str:
        return MIME.get(Path(self.key).suffix.lower(), "video/mp4" if self.kind == "video" else "image/png")


class MediaLoader:
    """Decodes media of one benchmark folder under `config`; `keep_source` also keeps file bytes."""

    def __init__(self, source: BenchmarkSource, config: DataConfig, keep_source: bool = False) -> None:
        self.source = source
        self.config = config
        self.keep_source = keep_source

    def load(self, ref: MediaRef) -> LoadedMedia:
        if ref.kind == "frames":
            key, names = self._frame_folder(ref)
            frames, fps = self._load_frame_folder(names, ref)
            media = LoadedMedia("video", key, frames=frames, fps=fps)
        else:
            key = self._first_existing(ref)
            readable = self._readable(key)
            if ref.kind == "image":
                media = LoadedMedia("image", key, image=load_image(readable, self.config))
            elif ref.bound is not None:
                frames, fps = load_segment(readable, self.config, ref.bound, key)
                media = LoadedMedia("video", key, frames=frames, fps=fps)
            else:
                clip = load_video(readable, self.config)
                media = LoadedMedia("video", key, frames=clip.frames, fps=clip.sample_fps)
            if self.keep_source and ref.bound is None and ref.append_image is None:
                media.source = readable if isinstance(readable, bytes) else Path(readable).read_bytes()
        if ref.append_image is not None and media.frames is not None:
            media.frames = append_still(media.frames, ref.append_image, key)
        return media

    # -- locating

    def _first_existing(self, ref: MediaRef) -> str:
        for key in ref.keys:
            if self.source.exists(key):
                return key
        raise MediaError("missing", f"{self.source.uri}: no media at {' or '.join(ref.keys)}")

    def _readable(self, key: str) -> str | bytes:
        path = self.source.local_path(key)
        if path is not None:
            return str(path)
        try:
            return self.source.store.get_bytes(key)
        except ObjectNotFound:
            raise MediaError("missing", f"{self.source.uri}: no media at {key}") from None
        except StorageError as exc:
            raise MediaError("unreadable", f"{self.source.uri}: cannot read {key}: {exc}") from None

    def _frame_folder(self, ref: MediaRef) -> tuple[str, list[str]]:
        for key in ref.keys:
            try:
                listed = self.source.list(key.rstrip("/") + "/")
            except AnnotationError as exc:
                raise MediaError("unreadable", str(exc)) from None
            names = sorted(k for k in listed if k.lower().endswith(IMAGE_SUFFIXES))
            if names:
                return key, names
        raise MediaError("missing", f"{self.source.uri}: no frame images under {' or '.join(ref.keys)}")

    # -- frame folders

    def _load_frame_folder(self, names: list[str], ref: MediaRef) -> tuple[np.ndarray, float]:
        from PIL import Image

        first, last = 0, len(names) - 1
        if ref.bound is not None:
            first = max(first, round(ref.bound[0] * ref.frames_fps))
            last = min(last, round(ref.bound[1] * ref.frames_fps))
        if last < first:
            raise MediaError("too_short", f"{names[0]}: segment {ref.bound} holds no frame")
        with Image.open(io.BytesIO(self._bytes(names[first]))) as probe:
            width, height = probe.size
        plan = _plan(last - first + 1, ref.frames_fps, height, width, self.config, names[0])
        frames = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
        for slot, index in enumerate(plan.frame_indices):
            frames[slot] = _resized(
                self._bytes(names[first + index]), plan.height, plan.width, names[first + index]
            )
        return frames, plan.sample_fps

    def _bytes(self, key: str) -> bytes:
        try:
            return self.source.store.get_bytes(key)
        except (ObjectNotFound, StorageError) as exc:
            raise MediaError("unreadable", f"{self.source.uri}: cannot read {key}: {exc}") from None


def _plan(count: int, fps: float, height: int, width: int, config: DataConfig, label: str):
    try:
        return plan_video_sampling(count, fps, height, width, config)
    except SamplingRuleError as exc:
        raise MediaError(exc.reason, f"{label}: {exc}") from None


def _resized(data: bytes, height: int, width: int, label: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"{label}: cannot decode image: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)


def append_still(frames: np.ndarray, image: bytes, label: str) -> np.ndarray:
    """`frames` (T, H, W, 3) followed by the image resized to (H, W), twice: (T + 2, H, W, 3)."""
    still = _resized(image, frames.shape[1], frames.shape[2], f"{label} (question image)")
    return np.concatenate([frames, still[None], still[None]], axis=0)


def load_segment(
    readable: str | bytes, config: DataConfig, bound: tuple[float, float], label: str
) -> tuple[np.ndarray, float]:
    """Frames (T, H, W, 3) of the segment [start, end] seconds, sampled by the reference rules."""
    import av

    try:
        container = av.open(io.BytesIO(readable) if isinstance(readable, bytes) else readable, "r")
    except av.FFmpegError as exc:
        raise MediaError("unreadable", f"{label}: cannot open as a video: {exc}") from None
    try:
        stream = container.streams.best("video")
        if stream is None:
            raise MediaError("no_video_stream", f"{label}: no video stream")
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if fps <= 0:
            raise MediaError("unreadable", f"{label}: no frame rate in the stream")
        total = sum(1 for packet in container.demux(stream) if packet.size > 0)
        first = max(0, round(bound[0] * fps))
        last = min(total - 1, round(bound[1] * fps))
        if last < first:
            raise MediaError(
                "too_short", f"{label}: segment {bound} s lies outside the {total / fps:.1f} s clip"
            )
        codec = stream.codec_context
        plan = _plan(last - first + 1, fps, codec.height, codec.width, config, label)
        wanted = {first + index: slot for slot, index in enumerate(plan.frame_indices)}
        frames = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
        filled = 0
        container.seek(0)
        for index, frame in enumerate(container.decode(stream)):
            slot = wanted.get(index)
            if slot is not None:
                frames[slot] = frame.to_ndarray(width=plan.width, height=plan.height, format="rgb24")
                filled += 1
            if index >= last:
                break
        if filled != plan.nframes:
            raise MediaError("truncated", f"{label}: decoded {filled} of {plan.nframes} sampled frames")
        return frames, plan.sample_fps
    except av.FFmpegError as exc:
        raise MediaError("corrupt", f"{label}: {exc}") from None
    finally:
        container.close()


def media_error_reason(exc: BaseException) -> str:
    """`missing_media` for absent files, `bad_media` for everything else that cannot be decoded."""
    return "missing_media" if getattr(exc, "reason", "") == "missing" else "bad_media"


__all__ = [
    "LoadedMedia",
    "MediaError",
    "MediaLoader",
    "append_still",
    "inference_data_config",
    "load_segment",
    "media_error_reason",
]
