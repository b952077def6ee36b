"""Synthetic video QA: short clips of coloured shapes, with Video-R1 records for all five problem types.

Made for a tiny model on CPU (shared/notes/tiny-model-learning.md): small frames (84×84 by
default), plain grey background, large motion, libx264 yuv444p crf 10 so colours survive, and
every multiple-choice question type has ONE fixed option order (shuffled options kept a tiny
model at chance). Each record carries the ground-truth `evidence` facts its question depends
on and a short reference `observation` / `process` / `output` in the method §1 template, whose
answer follows from the observation.

Three clip kinds, in a fixed repeating pattern so that a handful of clips covers every type:

- motion: one shape of one colour crosses half to all of the frame in one of four directions →
  colour, shape, direction (multiple choice), description (free-form), distance (regression);
- count: 1–4 shapes wobble in separate cells of a 3×3 grid → how many (numerical);
- word: a word in a built-in 5×7 bitmap font is shown on the middle frames (always on some
  frames the sampler picks) → which word (OCR).

Everything derives from (seed, split, clip index): the same arguments give byte-identical
records and videos, and clip i of a split does not depend on how many clips are made.

The drawing and encoding are `videop2r.data.shapes`, the questions and their records
`videop2r.data.synth_questions`; this module plans the clips and writes the set.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from videop2r.config import DataConfig
from videop2r.data.records import VideoR1Record, write_records
from videop2r.data.shapes import SHAPES, Scene, ShapeTrack, shape_size, write_clip
from videop2r.data.synth_questions import COLOUR_OPTIONS, QUESTIONS, questions_of, record_of
from videop2r.data.vision_rules import SamplingRuleError, linspace_indices, smart_nframes

log = logging.getLogger(__name__)

DIRECTIONS = ("left", "right", "up", "down")
WORDS = (
    "CAT", "DOG", "SUN", "BOX", "CUP", "KEY", "MAP", "PEN", "HAT", "BUS", "FOX", "OWL",
    "FISH", "BIRD", "TREE", "MOON", "STAR", "LAMP", "DOOR", "BOOK", "SHIP", "FROG", "CAKE", "KITE",
    "APPLE", "HOUSE", "TRAIN", "CLOCK", "WATER", "PLANT", "CHAIR", "BREAD",
)
CLIP_PATTERN = ("motion", "count", "word", "motion", "motion")
MAX_COUNT = 4


# --------------------------------------------------------------------------- scenes


def _motion_scene(rng: np.random.Generator, size: int, fps: int, frames: int) -> Scene:
    s = shape_size(size)
    margin = 2
    room = size - s - 2 * margin
    speed_max = room // (frames - 1)
    if speed_max < 1:
        raise ValueError(f"frame size {size} is too small for {frames} frames of motion")
    # Large motion (half to all of the free room): small steps left direction at chance in the notes.
    speed = int(rng.integers((speed_max + 1) // 2, speed_max + 1))
    travel = speed * (frames - 1)
    direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
    along = int(rng.integers(margin, margin + room - travel + 1))  # start on the motion axis
    across = int(rng.integers(margin, margin + room + 1))
    if direction in ("left", "up"):
        along += travel
    step = -speed if direction in ("left", "up") else speed
    horizontal = direction in ("left", "right")
    track = ShapeTrack(
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        colour=COLOUR_OPTIONS[int(rng.integers(len(COLOUR_OPTIONS)))],
        size=s,
        x=along if horizontal else across,
        y=across if horizontal else along,
        dx=step if horizontal else 0,
        dy=0 if horizontal else step,
    )
    return Scene("motion", size, fps, frames, shapes=(track,))


def _count_scene(rng: np.random.Generator, size: int, fps: int, frames: int) -> Scene:
    s = shape_size(size)
    cell = size // 3
    free = cell - s
    count = int(rng.integers(1, MAX_COUNT + 1))
    cells = rng.permutation(9)[:count]
    tracks = []
    for c in sorted(int(c) for c in cells):
        row, col = divmod(c, 3)
        wobble = max(0, free // 2 - 1)
        tracks.append(
            ShapeTrack(
                shape=SHAPES[int(rng.integers(len(SHAPES)))],
                colour=COLOUR_OPTIONS[int(rng.integers(len(COLOUR_OPTIONS)))],
                size=s,
                x=col * cell + free // 2,
                y=row * cell + free // 2,
                wobble=wobble,
                phase=float(rng.integers(0, 8)) * math.pi / 4,
            )
        )
    return Scene("count", size, fps, frames, shapes=tuple(tracks))


def _word_scene(rng: np.random.Generator, size: int, fps: int, frames: int, sampled: Sequence[int]) -> Scene:
    word = WORDS[int(rng.integers(len(WORDS)))]
    first, last = frames // 4, frames - 1 - frames // 4
    inside = [i for i in sampled if first <= i <= last]
    if not inside and sampled:  # make sure the sampler sees the word at least once
        middle = min(sampled, key=lambda i: abs(i - (frames - 1) / 2))
        first, last = min(first, middle), max(last, middle)
    return Scene("word", size, fps, frames, word=word, word_frames=(first, last))


def _sampled_indices(frames: int, fps: int, config: DataConfig) -> list[int]:
    try:
        count = smart_nframes(
            frames, fps, fps=config.fps, nframes=config.nframes, min_frames=config.min_frames, max_frames=config.max_frames
        )
    except SamplingRuleError:
        return []
    return linspace_indices(0, frames - 1, count)


# --------------------------------------------------------------------------- entry point


@dataclass
class SplitSummary:
    name: str
    clips: int
    records: int
    by_problem_type: dict[str, int]
    records_jsonl: Path
    records_json: Path | None


@dataclass
class SynthSummary:
    out_dir: Path  # also the media root: record paths are relative to it
    seed: int
    splits: dict[str, SplitSummary] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(s.records for s in self.splits.values())


def split_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _plan_clip(seed: int, split: str, index: int, kinds: Sequence[str], size: int, fps: int,
               durations: Sequence[int], config: DataConfig) -> Scene:
    rng = np.random.default_rng([seed, split_key(split), index])
    kind = kinds[index % len(kinds)]
    frames = fps * int(durations[int(rng.integers(len(durations)))])
    if kind == "motion":
        return _motion_scene(rng, size, fps, frames)
    if kind == "count":
        return _count_scene(rng, size, fps, frames)
    return _word_scene(rng, size, fps, frames, _sampled_indices(frames, fps, config))


def synthesize(
    out_dir: str | Path,
    num: int,
    seed: int = 0,
    *,
    splits: Mapping[str, int] | Sequence[str] | None = None,
    questions: Sequence[str] | None = None,
    size: int = 84,
    fps: int = 8,
    durations: Sequence[int] = (2, 3, 4),
    config: DataConfig | None = None,
    write_json: bool = True,
    progress: bool = True,
) -> SynthSummary:
    """Write clips under ``out_dir/videos/<split>/`` and records ``out_dir/<split>.jsonl`` (+ ``.json``).

    `splits` maps split name → number of clips, or lists names that each get `num` clips
    (default: one split "train" of `num` clips). `questions` picks question kinds from
    `QUESTIONS` (default all: every problem type). `config` is the sampling the clips will be
    read with; the OCR word is kept on frames it samples. Deterministic for the arguments.
    """
    from tqdm import tqdm

    if splits is None:
        splits = {"train": num}
    elif not isinstance(splits, Mapping):
        splits = {name: num for name in splits}
    questions = tuple(questions) if questions else tuple(QUESTIONS)
    unknown = [q for q in questions if q not in QUESTIONS]
    if unknown:
        raise ValueError(f"unknown question kinds {unknown}; choose from {list(QUESTIONS)}")
    if size < 28 or size % 2:
        raise ValueError(f"size must be an even number >= 28, got {size}")
    if fps < 1 or not durations or min(durations) < 1:
        raise ValueError("fps and durations must be positive")
    needed = {QUESTIONS[q][1] for q in questions}
    kinds = [k for k in CLIP_PATTERN if k in needed]
    config = config or DataConfig()
    out_dir = Path(out_dir)
    summary = SynthSummary(out_dir=out_dir, seed=seed)
    for split, clips in splits.items():
        if clips < 0:
            raise ValueError(f"split {split}: negative clip count {clips}")
        records: list[VideoR1Record] = []
        for index in tqdm(range(clips), desc=f"synth {split}", unit="clip", disable=not progress):
            scene = _plan_clip(seed, split, index, kinds, size, fps, durations, config)
            rel = f"videos/{split}/{index:05d}.mp4"
            write_clip(scene, out_dir / rel)
            for qa in questions_of(scene, questions):
                records.append(record_of(qa, f"synth-{split}-{index:05d}-{qa.kind}", rel))
        jsonl = write_records(out_dir / f"{split}.jsonl", records)
        json_path = write_records(out_dir / f"{split}.json", records) if write_json else None
        counts = Counter(r.problem_type for r in records)
        summary.splits[split] = SplitSummary(split, clips, len(records), dict(sorted(counts.items())), jsonl, json_path)
        log.info("synth %s: %d clips, %d records -> %s", split, clips, len(records), jsonl)
    return summary
