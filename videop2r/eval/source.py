"""A benchmark's released folder on a local disk or an object store, and its annotation tables.

`BenchmarkSource.open(uri)` takes a directory, ``file://`` or ``s3://bucket/prefix``; a URI whose
last segment is an annotation file (``.json``, ``.jsonl``, ``.parquet``) names that file, and
its folder is the benchmark's root. `rows(key)` reads a table as the release ships it — a
Parquet file (Hugging Face datasets), a JSON list or object, or JSONL — and returns every row
with its location; a JSONL line that is not JSON comes back as an `UnreadableRow`, so one bad
line costs one item, not the benchmark.
"""

from __future__ import annotations

import fnmatch
import io
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from videop2r.storage import ObjectNotFound, ObjectStore, StorageError, open_store

TABLE_SUFFIXES = (".json", ".jsonl", ".parquet")


class AnnotationError(ValueError):
    """A benchmark whose annotations cannot be read at all (missing, not JSON, wrong shape)."""


@dataclass(frozen=True)
class UnreadableRow:
    """A row of an annotation file that could not be parsed."""

    message: str


@dataclass
class BenchmarkSource:
    """The root of one benchmark's release; `annotation` is a key named by the URI itself."""

    store: ObjectStore
    uri: str
    annotation: str | None = None

    @classmethod
    def open(cls, uri: str, storage_config: Any = None) -> "BenchmarkSource":
        uri = uri.rstrip("/")
        name = uri.rsplit("/", 1)[-1]
        if name.lower().endswith(TABLE_SUFFIXES) and "/" in uri:
            root = uri[: -len(name) - 1]
            return cls(open_store(root, storage_config), uri, annotation=name)
        if name.lower().endswith(TABLE_SUFFIXES):  # a bare relative file name
            return cls(open_store(".", storage_config), uri, annotation=name)
        return cls(open_store(uri, storage_config), uri)

    # -- finding files

    def exists(self, key: str) -> bool:
        try:
            return self.store.exists(key)
        except (StorageError, ValueError):
            return False

    def find(self, *patterns: str) -> list[str]:
        """Keys matching any glob pattern (``*`` stays inside one folder), sorted, first pattern first."""
        found: list[str] = []
        for pattern in patterns:
            folder = str(PurePosixPath(pattern).parent)
            prefix = "" if folder == "." else folder + "/"
            depth = pattern.count("/")
            try:
                keys = [info.key for info in self.store.list(prefix)]
            except StorageError as exc:
                raise AnnotationError(f"{self.uri}: cannot list {prefix or 'the root'}: {exc}") from exc
            for key in keys:
                if key.count("/") == depth and fnmatch.fnmatchcase(key, pattern) and key not in found:
                    found.append(key)
        return found

    def match(self, *patterns: str) -> list[str]:
        """The keys of the first pattern that matches anything; [] if none does."""
        for pattern in patterns:
            keys = self.find(pattern)
            if keys:
                return keys
        return []

    def first(self, *patterns: str) -> list[str]:
        """The URI's own file, else the keys of the first pattern that matches; AnnotationError if none."""
        if self.annotation is not None:
            return [self.annotation]
        keys = self.match(*patterns)
        if not keys:
            raise AnnotationError(f"{self.uri}: no annotation file found (looked for {', '.join(patterns)})")
        return keys

    def list(self, prefix: str) -> list[str]:
        try:
            return [info.key for info in self.store.list(prefix)]
        except StorageError as exc:
            raise AnnotationError(f"{self.uri}: cannot list {prefix}: {exc}") from exc

    # -- reading

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.store.get_bytes(key)
        except ObjectNotFound:
            raise
        except (StorageError, ValueError) as exc:
            raise AnnotationError(f"{self.uri}: cannot read {key}: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        """The file behind `key` when the store is a local directory (decoders read it directly)."""
        root = getattr(self.store, "root", None)
        if root is None:
            return None
        return Path(root) / key

    def json(self, key: str) -> Any:
        try:
            return json.loads(self.read_bytes(key))
        except ObjectNotFound as exc:
            raise AnnotationError(f"{self.uri}: no annotation file {key}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AnnotationError(f"{self.uri}: {key} is not valid JSON: {exc}") from exc

    def rows(self, key: str) -> list[tuple[str, Any]]:
        """(location, row) of a table: Parquet, a JSON list (or an object of rows), or JSONL."""
        lower = key.lower()
        if lower.endswith(".parquet"):
            return self._parquet_rows(key)
        if lower.endswith(".jsonl"):
            return self._jsonl_rows(key)
        data = self.json(key)
        if isinstance(data, list):
            return [(f"{key} index {index}", row) for index, row in enumerate(data)]
        if isinstance(data, dict):
            return [(f"{key} key {name}", row) for name, row in data.items()]
        raise AnnotationError(f"{self.uri}: {key}: expected a JSON list or object, got {type(data).__name__}")

    def _parquet_rows(self, key: str) -> list[tuple[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(self.read_bytes(key)))
        except ObjectNotFound as exc:
            raise AnnotationError(f"{self.uri}: no annotation file {key}") from exc
        except (pa.ArrowException, OSError) as exc:
            raise AnnotationError(f"{self.uri}: {key} is not a readable Parquet file: {exc}") from exc
        return [(f"{key} row {index}", row) for index, row in enumerate(table.to_pylist())]

    def _jsonl_rows(self, key: str) -> list[tuple[str, Any]]:
        try:
            text = self.read_bytes(key).decode("utf-8", errors="replace")
        except ObjectNotFound as exc:
            raise AnnotationError(f"{self.uri}: no annotation file {key}") from exc
        out: list[tuple[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"{key} line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append((f"{key} line {number}", UnreadableRow(f"not valid JSON: {exc.msg}")))
        return out
