"""The records the CoT pipeline works on: read from a local or s3:// file, split into shards by id.

A record belongs to shard ``crc32(str(problem_id)) mod N``: the split depends on the id alone,
so every worker of a sharded job computes the same partition without talking to the others,
and a restarted worker finds its own records again.
"""

from __future__ import annotations

import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videop2r.config import ConfigError
from videop2r.data.records import RecordsError, SkippedRecord, VideoR1Record, read_records
from videop2r.storage import ObjectNotFound, StorageError, open_store


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"config error: --shard {self.index}/{self.count}: need 0 <= index < count")

    def holds(self, problem_id: Any) -> bool:
        return shard_of(problem_id, self.count) == self.index

    @property
    def suffix(self) -> str:
        """File-name suffix of this shard's outputs ("" when there is a single shard)."""
        return "" if self.count == 1 else f".shard-{self.index:05d}-of-{self.count:05d}"


def shard_of(problem_id: Any, count: int) -> int:
    return zlib.crc32(str(problem_id).encode("utf-8")) % count


def split_uri(uri: str) -> tuple[str, str]:
    """(folder URI, file name) of a records file URI."""
    uri = uri.rstrip("/")
    if "/" not in uri:
        return ".", uri
    folder, name = uri.rsplit("/", 1)
    return folder or "/", name


def read_input_records(
    uri: str, storage_config: Any = None
) -> tuple[list[VideoR1Record], list[SkippedRecord]]:
    """Records of a ``.json``/``.jsonl`` file at a path or ``s3://`` URI; invalid ones come back skipped."""
    if uri.startswith("s3://"):
        folder, name = split_uri(uri)
        with tempfile.TemporaryDirectory(prefix="videop2r-cot-") as tmp:
            local = Path(tmp) / name
            try:
                open_store(folder, storage_config).get_file(name, local)
            except ObjectNotFound:
                raise ConfigError(f"config error: --records: no such object {uri}") from None
            except StorageError as exc:
                raise ConfigError(f"config error: --records: cannot read {uri}: {exc}") from None
            return _read(local)
    return _read(Path(uri.removeprefix("file://")))


def _read(path: Path) -> tuple[list[VideoR1Record], list[SkippedRecord]]:
    try:
        return read_records(path)
    except RecordsError as exc:
        raise ConfigError(f"config error: --records: {exc}") from None
