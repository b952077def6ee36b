"""Tar shards of records + media on an object store, and the index that publishes them.

Layout under the output URI (a local directory or s3://bucket/prefix):

    index.json                      the dataset index, written LAST (the publication point)
    <generation>/00000.tar          records (<key>.json) and their media (media/<path>)
    <generation>/00000.idx.json     per-record entries: key, id, types, the record, byte ranges

A pack writes a new generation (`g<UTC time>-<random>`) beside the old one and then replaces
`index.json`, so a reader that opened the previous index keeps reading consistent shards, and a
crash mid-pack leaves the previous dataset intact. Generations older than the previous one are
deleted after publication. Tar members carry fixed metadata (mtime 0, uid 0), so the same input
gives byte-identical shards and the same `dataset_id`.

Every record entry holds the byte offset and size of its media inside the tar, so a reader
fetches one sample with a ranged read instead of downloading the shard.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from videop2r.config import StorageConfig
from videop2r.data.records import VideoR1Record
from videop2r.storage import ObjectNotFound, ObjectStore, StorageError, open_store

log = logging.getLogger(__name__)

FORMAT = "videop2r-shards/1"
INDEX_KEY = "index.json"
GENERATION_RE = re.compile(r"^g\d{8}T\d{6}-[0-9a-f]{6}$")

# Reasons a record is left out at pack time (label values of videop2r_samples_skipped_total).
SKIP_BAD_PATH = "bad_media_path"
SKIP_MISSING = "missing_media"
SKIP_EMPTY = "empty_media"
SKIP_UNREADABLE = "unreadable_media"


class ShardsNotFound(StorageError):
    """No shard index at a URI (the location does not exist, or nothing was packed there)."""


class ShardFormatError(StorageError):
    """An index that is not a VideoP2R shard index (or of an unknown format version)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemberRef(_Model):
    """A tar member: its name and the byte range of its data inside the shard."""

    name: str
    offset: int
    size: int


class RecordEntry(_Model):
    key: str  # unique in the dataset: zero-padded pack order
    id: str  # the record's problem_id, as text
    data_type: str
    problem_type: str
    record: dict[str, Any]  # the record as read (VideoR1Record.to_json())
    record_member: MemberRef
    media: MemberRef

    def parse_record(self) -> VideoR1Record:
        return VideoR1Record.model_validate(self.record)


class ShardIndex(_Model):
    format: str
    shard: str  # key of the tar
    records: list[RecordEntry]


class ShardInfo(_Model):
    key: str
    index_key: str
    num_records: int
    bytes: int
    sha256: str


class SkipEntry(_Model):
    id: str | None
    location: str  # media path, or "line 12" for a record that did not validate
    reason: str
    detail: str


class DatasetIndex(_Model):
    format: str
    generation: str
    created_at: str
    dataset_id: str  # content hash of the shards: the same data packed twice has the same id
    num_records: int
    counts: dict[str, dict[str, int]]  # {"data_type": {...}, "problem_type": {...}}
    skipped: list[SkipEntry]
    skipped_by_reason: dict[str, int]
    shards: list[ShardInfo]
    source: dict[str, str]


# -- reading --------------------------------------------------------------------------------


class ShardSet:
    """A published dataset: its index, lazily loaded per-shard indexes, ranged media reads."""

    def __init__(self, store: ObjectStore, index: DatasetIndex, cache_shards: int = 4) -> None:
        self.store = store
        self.index = index
        self._cache: dict[int, ShardIndex] = {}
        self._cache_order: list[int] = []
        self._cache_size = max(1, cache_shards)
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return self.store.uri

    @property
    def num_records(self) -> int:
        return self.index.num_records

    def shard_index(self, shard: int) -> ShardIndex:
        """Entries of shard number `shard` (kept in a small LRU cache)."""
        with self._lock:
            found = self._cache.get(shard)
            if found is not None:
                self._cache_order.remove(shard)
                self._cache_order.append(shard)
                return found
        info = self.index.shards[shard]
        try:
            loaded = ShardIndex.model_validate(self.store.get_json(info.index_key))
        except ObjectNotFound:
            raise ShardsNotFound(f"{self.uri}: shard index {info.index_key} is gone (a newer pack replaced "
                                 "this dataset twice while it was read; reopen it)") from None
        except (ValidationError, json.JSONDecodeError) as exc:
            raise ShardFormatError(f"{self.uri}/{info.index_key}: not a shard index: {exc}") from None
        if len(loaded.records) != info.num_records:
            raise ShardFormatError(f"{self.uri}/{info.index_key}: {len(loaded.records)} records, "
                                   f"the dataset index says {info.num_records}")
        with self._lock:
            self._cache[shard] = loaded
            self._cache_order.append(shard)
            while len(self._cache_order) > self._cache_size:
                self._cache.pop(self._cache_order.pop(0), None)
        return loaded

    def entries(self) -> Iterator[tuple[int, RecordEntry]]:
        """(shard number, entry) for every record, in pack order."""
        for shard in range(len(self.index.shards)):
            for entry in self.shard_index(shard).records:
                yield shard, entry

    def read_media(self, shard: int, entry: RecordEntry) -> bytes:
        """The media bytes of `entry` (one ranged read of its shard)."""
        return self.store.get_range(self.index.shards[shard].key, entry.media.offset, entry.media.size)


def open_shards(uri: str, storage_config: StorageConfig | None = None) -> ShardSet:
    """Open the dataset published at `uri`; a clear `ShardsNotFound` if there is none."""
    store = open_store(uri, storage_config)
    try:
        raw = store.get_bytes(INDEX_KEY)
    except ObjectNotFound:
        if not store.root_exists():
            raise ShardsNotFound(f"{uri}: no such location (the directory or bucket does not exist)") from None
        raise ShardsNotFound(f"{uri}: no shards here (no {INDEX_KEY}; write them with `videop2r data pack`)") from None
    try:
        index = DatasetIndex.model_validate_json(raw)
    except ValidationError as exc:
        raise ShardFormatError(f"{uri}/{INDEX_KEY}: not a VideoP2R shard index: {exc.errors()[0]['msg']} "
                               f"at {'.'.join(map(str, exc.errors()[0]['loc']))}") from None
    if index.format != FORMAT:
        raise ShardFormatError(f"{uri}/{INDEX_KEY}: format {index.format!r}, this version reads {FORMAT!r}")
    return ShardSet(store, index)
