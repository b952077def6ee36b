"""Decode videos and images with PyAV / Pillow into the frames Qwen2.5-VL expects.

`load_video` returns the frames that `qwen_vl_utils.fetch_video` would pick (same indices,
same output size, see `vision_rules`), but decodes only what those frames need:

1. demux the whole stream once (cheap, no decoding): packet timestamps give the frame count
   (as decord counts it: one frame per video packet) and the presentation order;
2. for each wanted frame, start at the last keyframe before it (one it does not lead, so an
   open GOP is handled) and decode up to it; whole GOPs without a wanted frame are skipped,
   decoding stops after the last wanted frame;
3. inside those ranges, H.264 packets that nothing references (nal_ref_idc = 0, typically
   half the B-frames) are not decoded unless they are wanted themselves;
4. a wanted frame goes through swscale once, from the decoder's YUV straight to RGB at the
   output size; the other decoded frames are never converted.

Media that cannot be used raise `MediaError` with a `reason` (missing, empty, unreadable,
no_video_stream, truncated, corrupt, too_short, bad_size) and a one-line message; the data
reader turns it into a counted skip. `load_videos` decodes many clips in parallel threads
(PyAV releases the GIL while decoding and scaling).
"""

from __future__ import annotations

import bisect
import io
import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Union

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from videop2r.config import DataConfig
from videop2r.data.vision_rules import SamplingRuleError, VideoSamplingPlan, image_size, plan_video_sampling

log = logging.getLogger(__name__)

MediaSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

MEDIA_ERROR_REASONS = (
    "missing", "empty", "unreadable", "no_video_stream", "truncated", "corrupt", "too_short", "bad_size",
)
# Full-resolution chroma in the horizontal pass: without it a 4:2:0 source's colour edges come out
# visibly sharper than the reference's (upsample to RGB, then antialiased resize); with it the
# mean difference to the reference halves for < 1 ms per frame.
_CHROMA = Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
SWS_INTERPOLATION = {
    "bicubic": Interpolation.BICUBIC | _CHROMA,
    "bilinear": Interpolation.BILINEAR | _CHROMA,
    "area": Interpolation.AREA | _CHROMA,
}


class MediaError(Exception):
    """A video or image that cannot be used. `reason` is one of MEDIA_ERROR_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self):  # picklable across process pools
        return (MediaError, (self.reason, self.message))


@dataclass
class VideoClip:
    """Sampled, resized frames of one video and the facts the processor needs."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, H and W multiples of 28, T even
    frame_indices: list[int]  # source frame index of each of the T frames, ascending
    sample_fps: float  # rate of the sampled frames: pass this (not source_fps) to the processor
    source_fps: float
    total_frames: int
    duration_s: float
    source_size: tuple[int, int]  # (height, width) of the decoded source frames


def _label(source: MediaSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", "<stream>"))


def _readable(source: MediaSource, label: str) -> str | BinaryIO:
    """What to hand to av.open / PIL: a path string or a binary file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise MediaError("missing", f"{label}: no such file")
        if not path.is_file():
            raise MediaError("unreadable", f"{label}: not a regular file")
        if path.stat().st_size == 0:
            raise MediaError("empty", f"{label}: zero-length file")
        return str(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError("empty", f"{label}: zero-length data")
        return io.BytesIO(bytes(source))
    if not hasattr(source, "read"):
        raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")
    if hasattr(source, "seek") and hasattr(source, "tell"):
        try:
            here = source.tell()
            end = source.seek(0, io.SEEK_END)
            source.seek(here)
        except (OSError, ValueError):
            return source
        if end - here <= 0:
            raise MediaError("empty", f"{label}: zero-length data")
    return source


# --------------------------------------------------------------------------- H.264 packets


def _h264_length_size(extradata: bytes | None) -> int | None:
    """NAL length-prefix size of AVCC ("avc1") H.264, or None for Annex B start codes."""
    if extradata and len(extradata) >= 5 and extradata[0] == 1:
        return (extradata[4] & 0x03) + 1
    return None


def _nal_headers(data: memoryview, length_size: int | None) -> Iterator[int]:
    """First byte of each NAL unit of one packet."""
    if length_size is not None:
        pos, end = 0, len(data)
        while pos + length_size < end:
            size = int.from_bytes(data[pos : pos + length_size], "big")
            pos += length_size
            if size <= 0 or pos + size > end:
                return
            yield data[pos]
            pos += size
        return
    raw = bytes(data)
    pos = raw.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(raw):
        yield raw[pos + 3]
        pos = raw.find(b"\x00\x00\x01", pos + 3)


def _h264_disposable(packet: av.Packet, length_size: int | None) -> bool:
    """True if every coded slice of the packet has nal_ref_idc = 0: no other frame uses it."""
    slices = 0
    for header in _nal_headers(memoryview(packet), length_size):
        nal_type = header & 0x1F
        if 1 <= nal_type <= 5:
            if header >> 5 & 0x03:
                return False
            slices += 1
    return slices > 0


# --------------------------------------------------------------------------- decoding plan


def _decode_ranges(pts: list[int], keyframes: list[int], wanted: Iterable[int]) -> list[tuple[int, int]]:
    """Decode-order ranges [start, end] that produce every wanted packet position.

    Each wanted position starts at the last keyframe at or before it whose presentation time
    is not after the wanted frame's (a frame shown before its GOP's keyframe is a leading
    picture of an open GOP and needs the previous GOP). Overlapping or touching ranges merge.
    """
    spans = []
    for pos in sorted(wanted):
        k = bisect.bisect_right(keyframes, pos) - 1
        while k > 0 and pts[pos] < pts[keyframes[k]]:
            k -= 1
        spans.append((keyframes[k] if k >= 0 else 0, pos))
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class _FrameSink:
    """Converts the wanted decoded frames to RGB at the output size, in place."""

    def __init__(self, plan: VideoSamplingPlan, interpolation: Interpolation) -> None:
        self.plan = plan
        self.frames = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
        self.filled = np.zeros(plan.nframes, dtype=bool)
        self.slot = {index: slot for slot, index in enumerate(plan.frame_indices)}
        self.reformatter = VideoReformatter()
        self.interpolation = interpolation
        self.untimed_frames = 0  # decoded frames that came out without a timestamp

    def put(self, index: int | None, frame: av.VideoFrame) -> None:
        if index is None and frame.pts is None:
            self.untimed_frames += 1
        slot = self.slot.get(index) if index is not None else None
        if slot is None or self.filled[slot] or frame.is_corrupt:
            return
        rgb = self.reformatter.reformat(
            frame,
            width=self.plan.width,
            height=self.plan.height,
            format="rgb24",
            interpolation=self.interpolation,
            threads=1,
        )
        self.frames[slot] = rgb.to_ndarray()
        self.filled[slot] = True

    @property
    def done(self) -> bool:
        return bool(self.filled.all())

    def missing(self) -> list[int]:
        return [self.plan.frame_indices[s] for s in np.flatnonzero(~self.filled)]


def _decode(codec: av.codec.context.CodecContext, packet: av.Packet | None, label: str, errors: list[str]):
    try:
        return codec.decode(packet)
    except av.FFmpegError as exc:  # a damaged packet: keep going, the wanted frames decide
        errors.append(str(exc))
        if len(errors) > 50:
            raise MediaError("corrupt", f"{label}: too many decode errors ({exc})") from None
        return []


def _decode_by_timestamp(
    codec, packets: list[av.Packet], pts: list[int], plan: VideoSamplingPlan, sink: _FrameSink, label: str
) -> list[str]:
    order = sorted(range(len(packets)), key=pts.__getitem__)
    wanted_positions = {order[i] for i in plan.frame_indices}
    index_of_pts = {pts[order[i]]: i for i in plan.frame_indices}
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe] or [0]
    disposable_ok = codec.name == "h264"
    length_size = _h264_length_size(codec.extradata) if disposable_ok else None
    errors: list[str] = []
    previous_end = None
    for start, end in _decode_ranges(pts, keyframes, wanted_positions):
        if previous_end is not None and start != previous_end + 1:
            for frame in _decode(codec, None, label, errors):  # drain before jumping ahead
                sink.put(index_of_pts.get(frame.pts), frame)
            codec.flush_buffers()
        for pos in range(start, end + 1):
            if pos not in wanted_positions and disposable_ok and _h264_disposable(packets[pos], length_size):
                continue
            for frame in _decode(codec, packets[pos], label, errors):
                sink.put(index_of_pts.get(frame.pts), frame)
        previous_end = end
    for frame in _decode(codec, None, label, errors):
        sink.put(index_of_pts.get(frame.pts), frame)
    return errors


def _decode_in_order(codec, packets: list[av.Packet], sink: _FrameSink, label: str) -> list[str]:
    """Fallback for streams without usable timestamps: the n-th decoded frame is frame n."""
    errors: list[str] = []
    count = 0
    for packet in [*packets, None]:
        for frame in _decode(codec, packet, label, errors):
            sink.put(count, frame)
            count += 1
        if sink.done:
            break
    return errors


def _source_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


def load_video(source: MediaSource, config: DataConfig, *, threads: int = 1, name: str | None = None) -> VideoClip:
    """Decode and sample one video by Qwen2.5-VL's rules (`config`: fps / nframes, frame and pixel limits).

    `source` is a path, the file's bytes, or a binary file object; `name` labels it in error
    messages (default: the path). `threads` is the decoder's thread count for this clip (1 when
    many clips decode in parallel, 0 = FFmpeg's choice). Returns `VideoClip.frames` of shape
    (T, H, W, 3), uint8. Raises `MediaError`.
    """
    label = name or _label(source)
    target = _readable(source, label)
    try:
        container = av.open(target, "r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError("unreadable", f"{label}: cannot open as a video (truncated or not a media file): {exc}") from None
    try:
        return _load_from_container(container, config, threads, label)
    except av.FFmpegError as exc:  # anything FFmpeg rejects that the steps above did not classify
        raise MediaError("corrupt", f"{label}: {exc}") from None
    finally:
        container.close()


def _load_from_container(container, config: DataConfig, threads: int, label: str) -> VideoClip:
    stream = container.streams.best("video")
    if stream is None:
        raise MediaError("no_video_stream", f"{label}: no video stream")
    codec = stream.codec_context
    if codec is None:
        raise MediaError("unreadable", f"{label}: no decoder for the video codec")
    codec.thread_count = threads
    if threads != 1:
        codec.thread_type = "AUTO"  # frame + slice threads
    packets: list[av.Packet] = []
    try:
        for packet in container.demux(stream):
            if packet.size > 0:
                packets.append(packet)
    except av.FFmpegError as exc:
        if not packets:
            raise MediaError("corrupt", f"{label}: cannot read packets: {exc}") from None
        raise MediaError("truncated", f"{label}: stream breaks off after {len(packets)} frames: {exc}") from None
    total = len(packets)
    declared = stream.frames or 0
    if declared > total:
        raise MediaError("truncated", f"{label}: header declares {declared} frames, only {total} readable")
    fps = _source_fps(stream)
    if fps <= 0:
        raise MediaError("unreadable", f"{label}: no frame rate in the stream")
    height, width = codec.height, codec.width
    try:
        plan = plan_video_sampling(total, fps, height, width, config)
    except SamplingRuleError as exc:
        raise MediaError(exc.reason, f"{label}: {exc}") from None
    sink = _FrameSink(plan, SWS_INTERPOLATION[config.resize_interpolation])
    pts = [p.pts for p in packets]
    if None in pts or len(set(pts)) != len(pts):
        errors = _decode_in_order(codec, packets, sink, label)
    else:
        errors = _decode_by_timestamp(codec, packets, pts, plan, sink, label)
        if not sink.done and sink.untimed_frames:  # the decoder dropped timestamps: count frames instead
            codec.flush_buffers()
            sink = _FrameSink(plan, SWS_INTERPOLATION[config.resize_interpolation])
            errors = _decode_in_order(codec, packets, sink, label)
    if not sink.done:
        missing = sink.missing()
        detail = f"; decoder errors: {errors[0]}" if errors else ""
        raise MediaError(
            "corrupt", f"{label}: {len(missing)} of {plan.nframes} sampled frames could not be decoded "
            f"(first: frame {missing[0]} of {total}){detail}"
        )
    if errors:
        log.warning("%s: %d packets failed to decode (%s); all %d sampled frames decoded, clip kept",
                    label, len(errors), errors[0], plan.nframes)
    return VideoClip(
        frames=sink.frames,
        frame_indices=list(plan.frame_indices),
        sample_fps=plan.sample_fps,
        source_fps=fps,
        total_frames=total,
        duration_s=total / fps,
        source_size=(height, width),
    )


def load_image(source: MediaSource, config: DataConfig, *, name: str | None = None) -> np.ndarray:
    """Decode one image and resize it by the reference rules: (H, W, 3) uint8 RGB.

    Transparent images are composed over white, as the reference does. `name` labels the
    source in error messages. Raises `MediaError`.
    """
    from PIL import Image, UnidentifiedImageError

    label = name or _label(source)
    target = _readable(source, label)
    try:
        with Image.open(target) as image:
            image.load()
            if image.mode == "RGBA":
                rgb = Image.new("RGB", image.size, (255, 255, 255))
                rgb.paste(image, mask=image.split()[3])
            else:
                rgb = image.convert("RGB")
    except UnidentifiedImageError:
        raise MediaError("unreadable", f"{label}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise MediaError(reason, f"{label}: cannot decode image: {exc}") from None
    try:
        height, width = image_size(rgb.height, rgb.width, config)
    except SamplingRuleError as exc:
        raise MediaError(exc.reason, f"{label}: {exc}") from None
    resized = rgb.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8).copy()


def default_workers() -> int:
    """Decode threads for parallel loading: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def load_videos(
    sources: Iterable[MediaSource],
    config: DataConfig,
    *,
    workers: int | None = None,
    prefetch: int | None = None,
) -> Iterator[VideoClip | MediaError]:
    """Decode many videos in parallel, yielding results in input order.

    A clip that fails yields its `MediaError` instead of raising, so one bad file does not
    stop the stream. At most `prefetch` clips (default 2 × workers) are in flight.
    """
    workers = workers or default_workers()
    depth = max(prefetch or 2 * workers, 1)

    def one(source: MediaSource) -> VideoClip | MediaError:
        try:
            return load_video(source, config, threads=1)
        except MediaError as exc:
            return exc

    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-decode") as pool:
        for source in sources:
            pending.append(pool.submit(one, source))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
