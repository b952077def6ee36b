"""The object-store interface every part of VideoP2R reads and writes through.

Keys are '/'-separated relative paths ("shards/train/00000.tar"). Two backends implement it:
a local directory and S3/MinIO. Writers publish atomically: a reader sees either the whole new
object or the old one, never a partial one.
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


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


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
    def open_read(self, key: str) -> BinaryIO:
        """A streaming, readable binary file object; the caller closes it."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    # -- conveniences built on the primitives above

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

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
