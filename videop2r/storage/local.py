"""Object store on a local directory: the embedded default (laptop, CI, a shared filesystem).

Writes go to a hidden temporary file beside the target, are fsync'ed, then `os.replace`d onto
the key: on POSIX the rename is atomic, so a concurrent reader opens either the old file or the
complete new one, and a crash leaves at worst a stray temporary (never listed), not a torn object.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from videop2r.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, StorageError, check_key

#: suffix of in-flight temporary files; never listed, never a valid object
PARTIAL_SUFFIX = ".vp2r-partial"


class _RangeReader(io.RawIOBase):
    """Reads at most `length` bytes of an open file from its current position."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file = file
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - memoryview/bytearray
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        got = self._file.readinto(view)
        self._left -= got or 0
        return got or 0

    def close(self) -> None:
        self._file.close()
        super().close()


class LocalStore(ObjectStore):
    """Objects are files under `root`; keys map to relative paths."""

    def __init__(self, root: str | Path, uri: str | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = uri or str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_atomically(self, key: str, write) -> None:  # noqa: ANN001 - callable(file)
        target = self._path(key)
        try:
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
            try:
                with self._create(tmp) as out:
                    write(out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot write {key}: {exc}") from exc

    @staticmethod
    def _create(path: Path) -> BinaryIO:
        for _ in range(3):  # a concurrent delete may prune the empty folder between mkdir and open
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return open(path, "wb")  # noqa: SIM115 - the caller closes it
            except FileNotFoundError:
                continue
        return open(path, "wb")  # noqa: SIM115

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, lambda out: out.write(data))

    def put_file(self, key: str, path: str | Path) -> None:
        def copy(out: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._write_atomically(key, copy)

    def open_read(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri}: no object {key!r}") from None
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot read {key}: {exc}") from exc
        if offset:
            file.seek(offset)
        if length is None:
            return file
        return io.BufferedReader(_RangeReader(file, length))

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri}: no object {key!r}") from None
        if not path.is_file():
            raise ObjectNotFound(f"{self.uri}: no object {key!r} (a directory)")
        return ObjectInfo(key, st.st_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the folder the prefix pins down, then filter by the plain string prefix.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / folder if folder else self.root
        if not start.is_dir():
            return iter(())
        found: list[ObjectInfo] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.endswith(PARTIAL_SUFFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    try:
                        found.append(ObjectInfo(key, os.stat(os.path.join(dirpath, name)).st_size))
                    except FileNotFoundError:  # deleted while listing
                        continue
        found.sort(key=lambda info: info.key)
        return iter(found)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot delete {key}: {exc}") from exc
        # Like S3, a "folder" exists only while objects are under it.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone)
                break
            parent = parent.parent

    def root_exists(self) -> bool:
        return self.root.is_dir()


def _fsync_dir(path: Path) -> None:
    """Persist a rename (best effort: not every filesystem lets a directory be fsync'ed)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
