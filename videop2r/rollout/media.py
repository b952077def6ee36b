"""How video and images travel in a ``/generate`` request: SGLang's own media sources, nothing else.

SGLang 0.5.23 (``srt/utils/common.py`` ``_normalize_video_input`` / ``load_image``) reads a media
item that is a ``data:`` URI, an ``http(s)://`` URL, a local file path (``file://`` too) or bare
base64 of the file — never ``s3://``, never a path that exists only on the driver.

For training the client sends the *exact frames the learner sees* as a ``data:`` URI of a
lossless video: PNG-coded RGB frames in a QuickTime container at the sampled frame rate
(``encode_video_uri``). SGLang's decoder (torchcodec/decord, FFmpeg underneath) and PyAV read
them back bit-identical; with the pod's ``--mm-process-config`` from
``videop2r.rollout.sglang_release.mm_process_config`` its frame sampling keeps every frame and its
resize keeps their size. Images go as a ``data:image/png`` URI (``encode_image_uri``).

``decode_video_bytes`` reads every frame of such a file back (the embedded server's decoder,
PyAV); it raises ``MediaError`` (``videop2r.data.media``'s, with a reason) on anything it cannot read.
"""

from __future__ import annotations

import base64
import fractions
import io
from typing import Any

import numpy as np

from videop2r.data.media import MediaError

VIDEO_MIME = "video/quicktime"
IMAGE_MIME = "image/png"
# A decoded video larger than this is refused (a malformed or hostile request).
MAX_DECODED_BYTES = 1 << 30


def _check_frames(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise MediaError("invalid", f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return np.ascontiguousarray(frames)


def encode_video_bytes(frames: Any, fps: float) -> bytes:
    """A lossless video file (PNG frames in QuickTime) of uint8 (T, H, W, 3) `frames` at `fps`."""
    import av

    frames = _check_frames(frames)
    if not fps or fps <= 0:
        raise MediaError("invalid", f"fps must be positive, got {fps!r}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mov") as container:
        stream = container.add_stream("png", rate=fractions.Fraction(float(fps)).limit_denominator(10_000))
        stream.width, stream.height, stream.pix_fmt = int(frames.shape[2]), int(frames.shape[1]), "rgb24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def encode_video_uri(frames: Any, fps: float) -> str:
    """``data:video/quicktime;base64,...`` of the exact `frames` at their sampled `fps`."""
    return data_uri(encode_video_bytes(frames, fps), VIDEO_MIME)


def encode_image_uri(image: Any) -> str:
    """``data:image/png;base64,...`` of a uint8 (H, W, 3) array, lossless."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise MediaError("invalid", f"image must be uint8 (H, W, 3), got {array.dtype} {tuple(array.shape)}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return data_uri(buffer.getvalue(), IMAGE_MIME)


def decode_video_bytes(data: bytes | str, label: str = "video_data") -> tuple[np.ndarray, float]:
    """Every frame of a video file (bytes or a path) as uint8 (T, H, W, 3), and its average fps
    (what SGLang's ``VideoDecoderWrapper`` reports as ``avg_fps``)."""
    import av

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise MediaError("no_video_stream", f"{label}: no video stream")
            stream = container.streams.video[0]
            frames = []
            size = 0
            for frame in container.decode(stream):
                array = frame.to_ndarray(format="rgb24")
                size += array.nbytes
                if size > MAX_DECODED_BYTES:
                    raise MediaError("bad_size", f"{label}: decoded size above {MAX_DECODED_BYTES} bytes")
                frames.append(array)
            rate = stream.average_rate or stream.guessed_rate
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"{label}: cannot decode the video ({exc})") from None
    if not frames:
        raise MediaError("empty", f"{label}: the video has no frames")
    if not rate or float(rate) <= 0:
        raise MediaError("unreadable", f"{label}: the video has no frame rate")
    return np.stack(frames), float(rate)
