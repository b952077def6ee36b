"""Where media come from, and the one error for media that cannot be used (data reader, eval, rollout).

A media source is a path, the file's bytes or a binary file object. `MediaError` carries a
`reason` from MEDIA_ERROR_REASONS and a one-line message: the data reader turns it into a counted
skip, the evaluation into the item's failure, the rollout server into a 400 answer. Its home is
this low layer (no PyAV) so that `videop2r.rollout` and `services/` raise the same class.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Union

MediaSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

# "invalid": a request's media item of a form the rollout API does not take (wrong array, scheme)
MEDIA_ERROR_REASONS = (
    "missing", "empty", "unreadable", "no_video_stream", "truncated", "corrupt", "too_short", "bad_size",
    "invalid",
)


class MediaError(ValueError):
    """A video or image that cannot be used. `reason` is one of MEDIA_ERROR_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self):  # picklable across process pools
        return (MediaError, (self.reason, self.message))


def source_label(source: MediaSource) -> str:
    """How `source` is named in error messages: its path, its size, or its file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", "<stream>"))


def readable_source(source: MediaSource, label: str) -> str | BinaryIO:
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
