"""Summarise packed shards: counts by data_type and problem_type, what was skipped at pack time,
and which media do not decode now (each decoded lightly: its first and last frames).

Also home of `probe_media`, the light decode that `pack` uses to keep unreadable media out.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videop2r.config import DataConfig, StorageConfig
from videop2r.data.shards import SkipEntry, open_shards

# A 2-frame plan at the smallest pixel budget: demuxes the whole clip (so a truncated stream is
# caught) but decodes only the first and the last frame, at a tiny output size.
_PROBE_PIXELS = 4 * 28 * 28


def probe_media(source: str | Path | bytes, data_type: str, data_config: DataConfig) -> str | None:
    """None if the media decodes, else a one-line reason ("truncated: clip.mp4: ...")."""
    from videop2r.data.media import MediaError
    from videop2r.data.video import load_image, load_video  # PyAV only when probing

    try:
        if data_type == "image":
            load_image(source, data_config)
        else:
            probe = data_config.model_copy(update={
                "nframes": 2, "min_frames": 2, "max_frames": 2, "video_min_pixels": _PROBE_PIXELS,
                "video_max_pixels": _PROBE_PIXELS, "video_total_pixels": None,
            })
            load_video(source, probe)
    except MediaError as exc:
        return f"{exc.reason}: {exc.message}"
    return None


@dataclass
class UnreadableMedia:
    key: str
    id: str
    media: str
    detail: str


@dataclass
class InspectReport:
    uri: str
    dataset_id: str
    generation: str
    num_records: int
    num_shards: int
    bytes: int
    counts: dict[str, dict[str, int]]
    skipped_at_pack: list[SkipEntry]
    media_checked: int  # distinct media decoded (0 with decode=False)
    unreadable: list[UnreadableMedia] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # index/entries disagreements

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped_at_pack"] = [s.model_dump() for s in self.skipped_at_pack]
        return data

    def format_text(self) -> str:
        lines = [
            f"{self.uri}: {self.num_records} records in {self.num_shards} shards "
            f"({self.bytes / 2**20:.1f} MiB), dataset {self.dataset_id}, generation {self.generation}",
        ]
        for name in ("data_type", "problem_type"):
            lines.append(f"by {name}:")
            width = max((len(k) for k in self.counts[name]), default=0)
            lines += [f"  {k:<{width}}  {v}" for k, v in self.counts[name].items()]
        by_reason = Counter(s.reason for s in self.skipped_at_pack)
        lines.append(f"skipped at pack time: {len(self.skipped_at_pack)}"
                     + "".join(f", {r} {n}" for r, n in sorted(by_reason.items())))
        if self.media_checked:
            lines.append(f"unreadable media: {len(self.unreadable)} records (of {self.media_checked} media decoded)")
            lines += [f"  {u.id} (key {u.key}, {u.media}): {u.detail}" for u in self.unreadable]
        else:
            lines.append("unreadable media: not checked (--no-decode)")
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def inspect_shards(
    uri: str,
    data_config: DataConfig | None = None,
    storage_config: StorageConfig | None = None,
    *,
    decode: bool = True,
    progress: bool = False,
) -> InspectReport:
    """Count the records of every shard and (with `decode`) probe each distinct media once."""
    data_config = data_config or DataConfig()
    shards = open_shards(uri, storage_config)
    index = shards.index
    data_types: Counter[str] = Counter()
    problem_types: Counter[str] = Counter()
    entries = list(shards.entries())
    for _, entry in entries:
        data_types[entry.data_type] += 1
        problem_types[entry.problem_type] += 1
    counts = {"data_type": dict(sorted(data_types.items())), "problem_type": dict(sorted(problem_types.items()))}
    problems = []
    if len(entries) != index.num_records:
        problems.append(f"index says {index.num_records} records, the shards hold {len(entries)}")
    if counts != index.counts:
        problems.append(f"index counts {json.dumps(index.counts)} differ from the shards' {json.dumps(counts)}")

    unreadable: list[UnreadableMedia] = []
    checked = 0
    if decode:
        # One probe per distinct media (several questions often share one video).
        first: dict[tuple[int, str], Any] = {}
        for shard, entry in entries:
            first.setdefault((shard, entry.media.name), (shard, entry))

        def check(item: tuple[int, Any]) -> str | None:
            shard, entry = item
            return probe_media(shards.read_media(shard, entry), entry.data_type, data_config)

        with ThreadPoolExecutor(max_workers=data_config.decode_workers) as pool:
            verdicts = dict(zip(first, tqdm(pool.map(check, first.values()), total=len(first),
                                            desc="decoding media", unit="file", disable=not progress)))
        checked = len(verdicts)
        for shard, entry in entries:
            detail = verdicts[(shard, entry.media.name)]
            if detail is not None:
                unreadable.append(UnreadableMedia(entry.key, entry.id, entry.media.name, detail))
    return InspectReport(
        uri=shards.uri, dataset_id=index.dataset_id, generation=index.generation, num_records=len(entries),
        num_shards=len(index.shards), bytes=sum(s.bytes for s in index.shards), counts=counts,
        skipped_at_pack=list(index.skipped), media_checked=checked, unreadable=unreadable, problems=problems,
    )
