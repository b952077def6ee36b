"""The object-store interface every part of VideoP2R reads and writes through.

Keys are '/'-separated relative paths ("shards/train/00000.tar"). Two backends implement it:
a local directory and S3/MinIO. Writers publish atomically: a reader sees either the whole new
object or the old one, never a partial one. Multi-object publications (shards + index,
checkpoint files + "latest") write their pointer object last, so a reader that goes through the
pointer never sees a half-written set.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO


class StorageError(RuntimeError):
    """An object-store operation that failed for good (after retries)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The key does not exist."""


class InvalidKey(StorageError, ValueError):
    """A key that cannot name an object (empty, absolute, '..', '//', backslash)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    """Return `key` if it is a valid relative object key, else raise `InvalidKey`."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"invalid object key {key!r}: empty")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid object key {key!r}: must be a relative '/'-separated path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"invalid object key {key!r}: empty, '.' or '..' path segment")
    return key


class ObjectStore(abc.ABC):
    """A flat key space under one root (a directory, or s3://bucket/prefix)."""

    #: the URI this store was opened from
    uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, atomically replacing what was there."""

    @abc.abstractmethod
    def put_file(self, key: str, path: str | Path) -> None:
        """Upload a local file (multipart above the part size), atomically."""

    @abc.abstractmethod
    def open_read(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A streaming, readable binary file object over bytes [offset, offset+length) of `key`
        (to the end when `length` is None); the caller closes it. Raises `ObjectNotFound`."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a plain string prefix, not only a folder),
        sorted by key."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size of `key`; raises `ObjectNotFound`."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    @abc.abstractmethod
    def root_exists(self) -> bool:
        """Whether the root itself exists (the directory; the bucket and, if set, any object under
        the prefix), to tell "wrong URI" apart from "no such object"."""

    # -- conveniences built on the primitives above

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of `key` (a ranged read; the whole object is not fetched)."""
        if length == 0:
            return b""
        with self.open_read(key, offset, length) as stream:
            data = stream.read()
        if len(data) != length:
            raise StorageError(f"{self.uri}: {key}: short range read ({len(data)} of {length} bytes at {offset})")
        return data

    def get_file(self, key: str, path: str | Path) -> Path:
        """Download `key` to a local path (written atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        with self.open_read(key) as stream, open(tmp, "wb") as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
        tmp.replace(path)
        return path

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=1, sort_keys=True).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
