"""A decoded medium as OpenAI chat content parts, in the form the endpoint accepts.

- ``video_url``: the file itself, ``{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..."}}``
  — what SGLang and vLLM serving Qwen2.5-VL take; the server samples frames by its own settings.
  Media that are not one whole file (segments, frame folders, a clip with an appended image)
  travel as a small MP4 of the frames we sampled (`clip_mp4`).
- ``images``: one ``image_url`` JPEG data URI per sampled frame — what hosted APIs take (they
  have no video input); the frames are the ones sampled by our settings.
- ``frames``: the exact sampled frames as a lossless ``video_url`` data URI
  (``videop2r.rollout.media.encode_video_uri``): the server sees bit-identical frames.

An image medium is one ``image_url`` part (``frames``: a lossless PNG data URI).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np

from videop2r.eval.clips import LoadedMedia
from videop2r.rollout.media import data_uri, encode_image_uri, encode_video_uri

CHAT_MEDIA = ("video_url", "images", "frames")
JPEG_QUALITY = 90


def jpeg_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return data_uri(buffer.getvalue(), "image/jpeg")


def clip_mp4(frames: np.ndarray, fps: float) -> bytes:
    """The sampled frames (T, H, W, 3) as a small H.264 file at `fps`, for servers that only take video files.

    A segment, a frame folder or a clip with an appended image is no file of the release; this one
    holds exactly the frames our settings sampled (yuv444p, crf 10: colours survive)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = int(frames.shape[1]), int(frames.shape[2])
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "10"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def video_file_uri(media: LoadedMedia) -> str:
    """A data URI of the video file: the release's own file, or `clip_mp4` of the sampled frames."""
    if media.source is not None:
        return data_uri(media.source, media.mime)
    return data_uri(clip_mp4(media.frames, float(media.fps)), "video/mp4")


def media_parts(media: LoadedMedia, mode: str) -> list[dict[str, Any]]:
    """Content parts carrying `media` (placed before the question text, as method §1's prompt does)."""
    if mode not in CHAT_MEDIA:
        raise ValueError(f"unknown chat media mode {mode!r}; expected one of {CHAT_MEDIA}")
    if media.kind == "image":
        if mode == "frames":
            return [{"type": "image_url", "image_url": {"url": encode_image_uri(media.image)}}]
        if mode == "video_url" and media.source is not None:
            return [{"type": "image_url", "image_url": {"url": data_uri(media.source, media.mime)}}]
        return [{"type": "image_url", "image_url": {"url": jpeg_uri(media.image)}}]
    if mode == "frames":
        # the exact sampled frames, losslessly (OpenAI-style video_url part, as SGLang's chat reads it)
        return [{"type": "video_url", "video_url": {"url": encode_video_uri(media.frames, float(media.fps))}}]
    if mode == "video_url":
        return [{"type": "video_url", "video_url": {"url": video_file_uri(media)}}]
    return [{"type": "image_url", "image_url": {"url": jpeg_uri(frame)}} for frame in media.frames]
