"""Stream samples out of packed shards: deterministic for a seed, resumable from a cursor,
with prefetch and parallel decode.

Order. Epoch e visits every record once: the shards in a permutation drawn from (seed, e), and
inside each shard its records in a permutation drawn from (seed, e, shard). Consecutive samples
thus come from one shard at a time (the per-shard index stays cached) while the order still
changes every epoch. Without shuffling the order is the pack order.

Cursor. `StreamCursor(epoch, position)` names the next record of that epoch's order; every
`Sample` carries the cursor just after itself, so a checkpoint that stores `sample.cursor`
resumes with exactly the samples that would have followed. The cursor also records the seed
and the dataset id, and resuming against other data or another seed is an error, not a silent
reshuffle.

Decode. Each record costs one ranged read of its media (the shard is never downloaded whole)
and one decode; `decode_workers` threads do both (PyAV and the resize release the GIL) while
up to `prefetch` samples wait ready ahead of the consumer. Results are yielded in order, so
the worker count never changes the sequence. Media that cannot be decoded is a counted skip
(`videop2r_samples_skipped_total{reason="bad_media"}`) with one log line naming the record; a
record that no longer validates likewise (reason "invalid_record"). Storage failures that
outlast the retries are raised: the data is unreachable, not bad.
"""

from __future__ import annotations

import io
import logging
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from videop2r.config import DataConfig, StorageConfig
from videop2r.data.records import VideoR1Record
from videop2r.data.shards import RecordEntry, ShardSet, open_shards
from videop2r.metrics import metric
from videop2r.storage import StorageError

log = logging.getLogger(__name__)

SKIP_BAD_MEDIA = "bad_media"
SKIP_INVALID_RECORD = "invalid_record"


class StreamError(ValueError):
    """A stream that cannot start: an empty dataset, or a cursor that does not fit it."""


@dataclass(frozen=True)
class StreamCursor:
    """Where a stream resumes: the next position of an epoch's order (JSON-able via to_dict)."""

    epoch: int = 0
    position: int = 0
    seed: int = 0
    dataset_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StreamCursor":
        try:
            return cls(epoch=int(data["epoch"]), position=int(data["position"]), seed=int(data["seed"]),
                       dataset_id=str(data["dataset_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StreamError(f"not a stream cursor: {data!r} ({exc})") from None


@dataclass
class Sample:
    """One record with its decoded media.

    `video`: a `videop2r.data.video.VideoClip` (frames uint8 (T, H, W, 3), frame_indices,
    sample_fps) for data_type "video", else None; `image`: the decoded image for data_type
    "image", else None. `cursor` resumes the stream right after this sample."""

    record: VideoR1Record
    key: str
    video: Any | None
    image: Any | None
    epoch: int
    position: int
    cursor: StreamCursor


@dataclass(frozen=True)
class _Skip:
    entry: RecordEntry
    reason: str
    detail: str


def epoch_order(shard_sizes: list[int], seed: int, epoch: int, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """The visiting order of one epoch as (shard number, index inside the shard), each (N,) int64."""
    sizes = np.asarray(shard_sizes, dtype=np.int64)
    if not shuffle:
        shards = np.repeat(np.arange(len(sizes)), sizes)
        inner = np.concatenate([np.arange(n) for n in sizes]) if len(sizes) else np.zeros(0, np.int64)
        return shards, inner
    shard_perm = np.random.default_rng([seed, epoch]).permutation(len(sizes))
    shards = np.repeat(shard_perm, sizes[shard_perm])
    inner_parts = [np.random.default_rng([seed, epoch, int(s)]).permutation(int(sizes[s])) for s in shard_perm]
    inner = np.concatenate(inner_parts) if inner_parts else np.zeros(0, np.int64)
    return shards, inner


def decode_media(entry: RecordEntry, media: bytes, data_config: DataConfig) -> tuple[Any | None, Any | None]:
    """(video, image) of a record from its media bytes; raises `MediaError` if undecodable."""
    from videop2r.data.video import load_image, load_video  # PyAV only when decoding

    if entry.data_type == "image":
        return None, load_image(io.BytesIO(media), data_config)
    return load_video(io.BytesIO(media), data_config), None


class ShardStream:
    """Iterate the samples of the shards at `uri`.

    `epochs`: how many passes (None = forever); `cursor`: a `StreamCursor` or its dict to resume
    from; `rank`/`world_size`: this consumer takes positions p with p % world_size == rank (the
    cursor stays global, so each rank keeps its own); `decode=False` yields records only.

    Each `iter()` continues after the last sample yielded (samples decoded ahead but not taken
    are decoded again); one stream object is iterated by one consumer at a time."""

    def __init__(
        self,
        uri: str | ShardSet,
        data_config: DataConfig | None = None,
        storage_config: StorageConfig | None = None,
        *,
        seed: int | None = None,
        shuffle: bool | None = None,
        epochs: int | None = 1,
        cursor: StreamCursor | dict[str, Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        decode: bool = True,
    ) -> None:
        self.data_config = data_config or DataConfig()
        self.shards = uri if isinstance(uri, ShardSet) else open_shards(uri, storage_config)
        self.seed = self.data_config.seed if seed is None else seed
        self.shuffle = self.data_config.shuffle if shuffle is None else shuffle
        self.epochs = epochs
        self.decode = decode
        if not 0 <= rank < world_size:
            raise StreamError(f"rank {rank} is not in [0, {world_size})")
        self.rank, self.world_size = rank, world_size
        self.num_records = self.shards.num_records
        if self.num_records == 0:
            raise StreamError(f"{self.shards.uri}: the dataset has no records (every record was skipped at pack time?)")
        self._shard_sizes = [s.num_records for s in self.shards.index.shards]
        self.start = self._check_cursor(cursor)
        self.cursor = self.start  # after the last sample yielded
        self.skipped: Counter[str] = Counter()

    @property
    def dataset_id(self) -> str:
        return self.shards.index.dataset_id

    def _check_cursor(self, cursor: StreamCursor | dict[str, Any] | None) -> StreamCursor:
        if cursor is None:
            return StreamCursor(0, 0, self.seed, self.dataset_id)
        if isinstance(cursor, dict):
            cursor = StreamCursor.from_dict(cursor)
        if cursor.dataset_id != self.dataset_id:
            raise StreamError(f"cursor is for dataset {cursor.dataset_id!r}, the shards at {self.shards.uri} "
                              f"are dataset {self.dataset_id!r}")
        if cursor.seed != self.seed:
            raise StreamError(f"cursor was taken with seed {cursor.seed}, this stream has seed {self.seed}")
        if not 0 <= cursor.position <= self.num_records or cursor.epoch < 0:
            raise StreamError(f"cursor position {cursor.position} outside [0, {self.num_records}]")
        return cursor

    def __len__(self) -> int:
        """Positions per epoch this rank visits (skips not deducted)."""
        return len(range(self.rank, self.num_records, self.world_size))

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores: the cursor after the last sample yielded."""
        return self.cursor.to_dict()

    def _positions(self) -> Iterator[tuple[int, int, int, int]]:
        """(epoch, position, shard, index inside shard) from the current cursor on."""
        epoch, position = self.cursor.epoch, self.cursor.position
        while self.epochs is None or epoch < self.epochs:
            shards, inner = epoch_order(self._shard_sizes, self.seed, epoch, self.shuffle)
            first = position + (self.rank - position) % self.world_size
            for p in range(first, self.num_records, self.world_size):
                yield epoch, p, int(shards[p]), int(inner[p])
            epoch, position = epoch + 1, 0

    def _load(self, shard: int, entry: RecordEntry) -> tuple[VideoR1Record, Any, Any] | _Skip:
        """Runs in a decode thread: parse the record, fetch and decode its media."""
        try:
            record = entry.parse_record()
        except ValidationError as exc:  # packed by a version whose record model differs
            return _Skip(entry, SKIP_INVALID_RECORD, f"record does not validate: {exc.errors()[0]['msg']}")
        if not self.decode:
            return record, None, None
        media = self.shards.read_media(shard, entry)  # storage failures (after retries) propagate
        try:
            return (record, *decode_media(entry, media, self.data_config))
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - MediaError, or a decoder failure it did not wrap: a bad sample never ends the run
            return _Skip(entry, SKIP_BAD_MEDIA, f"{getattr(exc, 'reason', type(exc).__name__)}: {exc}")

    def __iter__(self) -> Iterator[Sample]:
        window = max(1, self.data_config.prefetch) + self.data_config.decode_workers
        ahead: deque[tuple[int, int, RecordEntry, Future]] = deque()
        positions = self._positions()
        pool = ThreadPoolExecutor(max_workers=self.data_config.decode_workers, thread_name_prefix="videop2r-decode")
        try:
            while True:
                while len(ahead) < window:
                    step = next(positions, None)
                    if step is None:
                        break
                    epoch, position, shard, inner = step
                    entry = self.shards.shard_index(shard).records[inner]
                    ahead.append((epoch, position, entry, pool.submit(self._load, shard, entry)))
                if not ahead:
                    return
                epoch, position, entry, future = ahead.popleft()
                loaded = future.result()
                after = self._after(epoch, position)
                if isinstance(loaded, _Skip):
                    self.skipped[loaded.reason] += 1
                    metric("videop2r_samples_skipped_total").labels(reason=loaded.reason).inc()
                    log.warning("skipping record %s (key %s, %s): %s: %s", entry.id, entry.key,
                                entry.media.name, loaded.reason, loaded.detail)
                    continue
                record, video, image = loaded
                self.cursor = after
                yield Sample(record, entry.key, video, image, epoch, position, after)
        finally:
            for *_, future in ahead:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _after(self, epoch: int, position: int) -> StreamCursor:
        if position + 1 >= self.num_records:
            return StreamCursor(epoch + 1, 0, self.seed, self.dataset_id)
        return StreamCursor(epoch, position + 1, self.seed, self.dataset_id)
