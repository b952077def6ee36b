"""Packing records + media into the tar shards that `videop2r.data.shards` reads.

A pack writes a new generation beside the old one and then replaces `index.json` (see
`videop2r.data.shards` for the layout), so a crash mid-pack leaves the previous dataset intact.
Media are checked (and optionally probed with PyAV) before anything is written; a record whose
media cannot be packed is skipped, counted and logged with its id.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from videop2r.config import DataConfig, StorageConfig
from videop2r.data.inspect import probe_media
from videop2r.data.records import VideoR1Record, read_records
from videop2r.data.shards import (
    FORMAT, GENERATION_RE, INDEX_KEY, SKIP_BAD_PATH, SKIP_EMPTY, SKIP_MISSING, SKIP_UNREADABLE,
    DatasetIndex, MemberRef, RecordEntry, ShardIndex, ShardInfo, SkipEntry,
)
from videop2r.metrics import metric
from videop2r.storage import ObjectNotFound, ObjectStore, open_store

log = logging.getLogger(__name__)



@dataclass
class PackReport:
    uri: str
    generation: str
    dataset_id: str
    num_records: int
    num_shards: int
    bytes: int
    counts: dict[str, dict[str, int]]
    skipped: list[SkipEntry] = field(default_factory=list)

    def summary(self) -> str:
        by_reason = Counter(s.reason for s in self.skipped)
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(by_reason.items())) or "none"
        return (f"packed {self.num_records} records into {self.num_shards} shards "
                f"({self.bytes / 2**20:.1f} MiB) at {self.uri} (generation {self.generation}); "
                f"skipped {len(self.skipped)}: {skipped}")


def new_generation() -> str:
    return f"g{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _ShardWriter:
    """One tar shard being written to a local temporary file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed in finish()
        self._media: dict[str, MemberRef] = {}  # media deduplicated within the shard
        self.entries: list[RecordEntry] = []
        self.media_bytes = 0

    def _add(self, name: str, size: int, source: io.BufferedIOBase) -> MemberRef:
        self._tar.addfile(_tar_info(name, size), source)
        padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        return MemberRef(name=name, offset=self._tar.offset - padded, size=size)

    def add(self, key: str, record: VideoR1Record, media_path: Path) -> None:
        media_name = f"media/{record.media_relpath}"
        media = self._media.get(media_name)
        if media is None:
            size = media_path.stat().st_size
            with open(media_path, "rb") as source:
                media = self._add(media_name, size, source)
            self._media[media_name] = media
            self.media_bytes += size
        payload = json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True).encode()
        record_member = self._add(f"{key}.json", len(payload), io.BytesIO(payload))
        self.entries.append(RecordEntry(
            key=key, id=str(record.problem_id), data_type=record.data_type, problem_type=record.problem_type,
            record=record.to_json(), record_member=record_member, media=media,
        ))

    def finish(self) -> tuple[int, str]:
        """Close the tar; (size in bytes, sha256)."""
        self._tar.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as done:
            while chunk := done.read(1 << 20):
                digest.update(chunk)
        return self.path.stat().st_size, digest.hexdigest()


def check_media(record: VideoR1Record, media_root: Path, data_config: DataConfig,
                probe: bool) -> tuple[str, str] | None:
    """Why the record's media cannot be packed, as (reason, detail), or None if it can."""
    path = record.media_path(media_root)
    # Lexical check: '..' may not climb out, but symlinks inside the root may point anywhere.
    root = os.path.normpath(os.path.abspath(media_root))
    if os.path.isabs(record.media_relpath) or not os.path.normpath(os.path.abspath(path)).startswith(root + os.sep):
        return SKIP_BAD_PATH, f"{record.path!r} points outside the media root"
    if not path.is_file():
        return SKIP_MISSING, f"no such file: {path}"
    try:
        size = path.stat().st_size
        with open(path, "rb") as media:
            media.read(1)
    except OSError as exc:
        return SKIP_UNREADABLE, f"cannot read {path}: {exc.strerror or exc}"
    if size == 0:
        return SKIP_EMPTY, f"zero-length file: {path}"
    if probe:
        problem = probe_media(path, record.data_type, data_config)
        if problem is not None:
            return SKIP_UNREADABLE, problem
    return None


def _record_skip(skipped: list[SkipEntry], ident: str | None, location: str, reason: str, detail: str) -> None:
    log.warning("skipping record %s (%s): %s: %s", ident if ident is not None else "<no id>", location, reason, detail)
    metric("videop2r_samples_skipped_total").labels(reason=reason).inc()
    skipped.append(SkipEntry(id=ident, location=location, reason=reason, detail=detail))


def _check_all(records: list[VideoR1Record], media_root: Path, data_config: DataConfig, probe: bool,
               workers: int, progress: bool) -> dict[str, tuple[str, str] | None]:
    """check_media for every distinct media path, in parallel (PyAV releases the GIL)."""
    first_of: dict[str, VideoR1Record] = {}
    for record in records:
        first_of.setdefault(record.media_relpath, record)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {rel: pool.submit(check_media, rec, media_root, data_config, probe) for rel, rec in first_of.items()}
        return {rel: future.result() for rel, future in
                tqdm(futures.items(), desc="checking media", unit="file", disable=not progress)}


def pack_shards(
    records_path: str | Path,
    media_root: str | Path,
    out_uri: str,
    *,
    data_config: DataConfig | None = None,
    storage_config: StorageConfig | None = None,
    probe: bool | None = None,
    progress: bool = False,
) -> PackReport:
    """Pack the records at `records_path` and their media under `media_root` into shards at
    `out_uri`; publish by writing `index.json` last. Bad records and missing, empty or
    unreadable media are skipped, logged once each, counted and listed in the report."""
    data_config = data_config or DataConfig()
    probe = data_config.probe_media_on_pack if probe is None else probe
    media_root = Path(media_root)
    if not media_root.is_dir():
        raise FileNotFoundError(f"media root is not a directory: {media_root}")
    records, bad_records = read_records(records_path)
    skipped = [SkipEntry(id=None if b.problem_id is None else str(b.problem_id), location=b.location,
                         reason=b.reason, detail=b.message) for b in bad_records]
    problems = _check_all(records, media_root, data_config, probe, data_config.decode_workers, progress)
    kept: list[VideoR1Record] = []
    for record in records:
        problem = problems[record.media_relpath]
        if problem is None:
            kept.append(record)
        else:
            _record_skip(skipped, str(record.problem_id), record.media_relpath, *problem)

    store = open_store(out_uri, storage_config)
    previous = _previous_generation(store)
    generation = new_generation()
    shards = _write_shards(store, generation, kept, media_root, data_config, progress)
    counts = {
        "data_type": dict(sorted(Counter(r.data_type for r in kept).items())),
        "problem_type": dict(sorted(Counter(r.problem_type for r in kept).items())),
    }
    dataset_id = hashlib.sha256("".join(s.sha256 for s in shards).encode()).hexdigest()[:16]
    index = DatasetIndex(
        format=FORMAT, generation=generation, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        dataset_id=dataset_id, num_records=len(kept), counts=counts, skipped=skipped,
        skipped_by_reason=dict(sorted(Counter(s.reason for s in skipped).items())), shards=shards,
        source={"records": str(records_path), "media_root": str(media_root)},
    )
    store.put_bytes(INDEX_KEY, index.model_dump_json(indent=1).encode())  # the publication point
    _delete_old_generations(store, keep={generation, previous})
    return PackReport(uri=store.uri, generation=generation, dataset_id=dataset_id, num_records=len(kept),
                      num_shards=len(shards), bytes=sum(s.bytes for s in shards), counts=counts, skipped=skipped)


def _split(records: list[VideoR1Record], media_root: Path, data_config: DataConfig) -> Iterator[list[VideoR1Record]]:
    """Groups of at most shard_size records whose distinct media stay within shard_max_mb."""
    limit = data_config.shard_max_mb << 20
    group: list[VideoR1Record] = []
    seen: set[str] = set()
    size = 0
    for record in records:
        extra = 0 if record.media_relpath in seen else record.media_path(media_root).stat().st_size
        if group and (len(group) >= data_config.shard_size or size + extra > limit):
            yield group
            group, seen, size = [], set(), 0
            extra = record.media_path(media_root).stat().st_size
        group.append(record)
        seen.add(record.media_relpath)
        size += extra
    if group:
        yield group


def _write_shards(store: ObjectStore, generation: str, records: list[VideoR1Record], media_root: Path,
                  data_config: DataConfig, progress: bool) -> list[ShardInfo]:
    """Write the tars locally and upload each (tar, then its entries) while the next is written."""
    shards: list[ShardInfo] = []
    pending: list[Future] = []
    next_key = 0
    with tempfile.TemporaryDirectory(prefix="videop2r-pack-") as tmp, \
            ThreadPoolExecutor(max_workers=1) as uploader, \
            tqdm(total=len(records), desc="packing", unit="record", disable=not progress) as bar:
        for number, group in enumerate(_split(records, media_root, data_config)):
            writer = _ShardWriter(Path(tmp) / f"{number:05d}.tar")
            for record in group:
                writer.add(f"{next_key:08d}", record, record.media_path(media_root))
                next_key += 1
                bar.update()
            size, sha256 = writer.finish()
            info = ShardInfo(key=f"{generation}/{number:05d}.tar", index_key=f"{generation}/{number:05d}.idx.json",
                             num_records=len(writer.entries), bytes=size, sha256=sha256)
            shard_index = ShardIndex(format=FORMAT, shard=info.key, records=writer.entries)
            while len(pending) >= 2:  # at most two finished tars waiting on local disk
                pending.pop(0).result()
            pending.append(uploader.submit(_upload, store, info, shard_index, writer.path))
            shards.append(info)
        for future in pending:
            future.result()
    return shards


def _upload(store: ObjectStore, info: ShardInfo, shard_index: ShardIndex, path: Path) -> None:
    store.put_file(info.key, path)
    store.put_bytes(info.index_key, shard_index.model_dump_json().encode())
    os.unlink(path)


def _previous_generation(store: ObjectStore) -> str | None:
    try:
        return str(store.get_json(INDEX_KEY).get("generation"))
    except (ObjectNotFound, json.JSONDecodeError, AttributeError):
        return None


def _delete_old_generations(store: ObjectStore, keep: set[str | None]) -> None:
    """Remove shards of generations before the previous one (readers of the previous index may
    still be running; readers of older ones had two publications' time to finish)."""
    for info in store.list():
        generation = info.key.split("/", 1)[0]
        if "/" in info.key and GENERATION_RE.match(generation) and generation not in keep:
            store.delete(info.key)
