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

Steps 2-4 are `videop2r.data.frame_decoding`. Media that cannot be used raise
`videop2r.data.media.MediaError` with a `reason` (missing, empty, unreadable, no_video_stream,
truncated, corrupt, too_short, bad_size) and a one-line message; the data reader turns it into a
counted skip. `load_videos` decodes many clips in parallel threads (PyAV releases the GIL while
decoding and scaling).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

import av
import numpy as np

from videop2r.config import DataConfig
from videop2r.data.frame_decoding import SWS_INTERPOLATION, FrameSink, decode_by_timestamp, decode_in_order
from videop2r.data.media import MediaError, MediaSource, readable_source, source_label
from videop2r.data.vision_rules import SamplingRuleError, image_size, plan_video_sampling

log = logging.getLogger(__name__)


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
    label = name or source_label(source)
    target = readable_source(source, label)
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
    sink = FrameSink(plan, SWS_INTERPOLATION[config.resize_interpolation])
    pts = [p.pts for p in packets]
    if None in pts or len(set(pts)) != len(pts):
        errors = decode_in_order(codec, packets, sink, label)
    else:
        errors = decode_by_timestamp(codec, packets, pts, plan, sink, label)
        if not sink.done and sink.untimed_frames:  # the decoder dropped timestamps: count frames instead
            codec.flush_buffers()
            sink = FrameSink(plan, SWS_INTERPOLATION[config.resize_interpolation])
            errors = decode_in_order(codec, packets, sink, label)
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

    label = name or source_label(source)
    target = readable_source(source, label)
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
