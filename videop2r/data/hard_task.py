"""A task where perception is the bottleneck: the replication study's data (issue 17, method §6).

The demo task carries one bit: the observation names the colour and the answer follows it, so the
perception reward and the outcome reward are the same signal and PA-GRPO cannot differ from GRPO.
Inside a group, perception tokens receive outcome signal only in proportion to the correlation ρ
between R_P and R_R; PA-GRPO's own perception advantage can only matter where ρ is well below 1.
This task is built for that:

- **hard perception** — in `hard_fraction` of the clips the moving shape is small
  (`hard_size` px instead of the usual fifth of the frame) and low in contrast (its colour is
  blended toward the grey background by `hard_contrast`), so SFT leaves colour perception partial
  there while easy clips are read reliably;
- **imperfect but learnable reasoning** — the four colour options come in one of TWO fixed orders
  (`ORDERS`), so mapping "my colour" to "its letter" needs the options in the prompt and can fail
  under sampling even when the observation is right (a wrong letter after a right observation
  is exactly where R_P and R_R disagree). The second order is the minority
  (`second_order_fraction`): with both orders equally likely a tiny model's SFT learned neither
  mapping (P(answer right | observation right) 45–56%, notes/tiny-model-learning.md saw the same
  for shuffled options), so the majority order is learnable and the minority one is what fails;
- **a teacher-filtered SFT split** — like the paper's CoT filter, SFT sees only items a teacher got
  right: the teacher reads easy clips correctly and hard clips with probability
  `teacher_hard_accuracy` (a seeded draw per clip); its wrong CoTs are dropped (and counted);
- **an RL pool apart from it**, a **validation** split that picks the SFT checkpoint, and a
  **held-out test** split the arms are compared on.

Every record is a Video-R1 multiple-choice record with `evidence = ["colour: <c>"]` and two extra
fields: `difficulty` ("easy" | "hard") and `option_order` (0 | 1). Deterministic for its arguments:
clip i of a split depends only on (seed, split, i).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from pydantic import BaseModel, Field

from videop2r.data.records import VideoR1Record, write_records
from videop2r.data.shapes import BACKGROUND, COLOURS, SHAPES, Scene, ShapeTrack, draw_shape, shape_size, write_clip
from videop2r.data.synth import split_key
from videop2r.data.synth_questions import DATA_SOURCE

log = logging.getLogger(__name__)

QUESTION = "What colour is the moving shape?"
# The two fixed option orders; the letter of a colour depends on which one the clip uses.
ORDERS: tuple[tuple[str, ...], ...] = (("red", "green", "blue", "yellow"), ("yellow", "blue", "green", "red"))
DIRECTIONS = ("left", "right", "up", "down")
SPLITS = ("sft", "rl", "val", "test")


class HardTaskSpec(BaseModel):
    """Sizes and difficulty of the task (configs/replication.yaml `task:`)."""

    model_config = {"extra": "forbid"}

    sft_clips: int = Field(400, ge=1)  # teacher candidates; the kept ones form the SFT split
    rl_clips: int = Field(300, ge=1)
    val_clips: int = Field(80, ge=1)
    test_clips: int = Field(160, ge=1)
    size: int = Field(84, ge=28)
    fps: int = Field(8, ge=1)
    seconds: int = Field(2, ge=1)
    hard_fraction: float = Field(0.5, ge=0, le=1)
    hard_size: int = Field(8, ge=2)
    hard_contrast: float = Field(0.3, gt=0, le=1)
    teacher_hard_accuracy: float = Field(0.6, ge=0, le=1)
    second_order_fraction: float = Field(0.25, ge=0, le=1)  # clips whose options use ORDERS[1]


@dataclass(frozen=True)
class HardScene(Scene):
    """A motion scene whose shape colour is blended toward the background by `contrast`."""

    contrast: float = 1.0

    def render(self, t: int) -> np.ndarray:
        image = np.empty((self.size, self.size, 3), dtype=np.uint8)
        image[:] = BACKGROUND
        track = self.shapes[0]
        draw_shape(image, track, *track.corner(t, self.frames))
        if self.contrast < 1.0:
            drawn = np.any(image != np.array(BACKGROUND, dtype=np.uint8), axis=-1)
            grey, colour = np.array(BACKGROUND, float), np.array(COLOURS[track.colour], float)
            image[drawn] = np.round(grey + self.contrast * (colour - grey)).astype(np.uint8)
        return image


@dataclass(frozen=True)
class HardItem:
    scene: HardScene
    colour: str
    order: int
    hard: bool
    teacher_right: bool


def plan_item(spec: HardTaskSpec, seed: int, split: str, index: int) -> HardItem:
    """Clip `index` of `split`: a pure function of its arguments."""
    rng = np.random.default_rng([seed, split_key("hard-" + split), index])
    hard = bool(rng.random() < spec.hard_fraction)
    colour = ORDERS[0][int(rng.integers(4))]
    order = int(rng.random() < spec.second_order_fraction)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    side = spec.hard_size if hard else shape_size(spec.size)
    frames = spec.fps * spec.seconds
    margin = 2
    room = spec.size - side - 2 * margin
    speed = max(1, room // (2 * (frames - 1)))
    travel = speed * (frames - 1)
    direction = DIRECTIONS[int(rng.integers(4))]
    along = int(rng.integers(margin, margin + max(1, room - travel + 1)))
    across = int(rng.integers(margin, margin + room + 1))
    if direction in ("left", "up"):
        along += travel
    step = -speed if direction in ("left", "up") else speed
    horizontal = direction in ("left", "right")
    track = ShapeTrack(shape=shape, colour=colour, size=side, x=along if horizontal else across,
                       y=across if horizontal else along, dx=step if horizontal else 0, dy=0 if horizontal else step)
    scene = HardScene("motion", spec.size, spec.fps, frames, shapes=(track,),
                      contrast=spec.hard_contrast if hard else 1.0)
    teacher_right = (not hard) or bool(rng.random() < spec.teacher_hard_accuracy)
    return HardItem(scene, colour, order, hard, teacher_right)


def hard_record(item: HardItem, problem_id: str, path: str) -> VideoR1Record:
    """The record of one item: options in its order, the reference CoT names colour then letter."""
    options = ORDERS[item.order]
    letter = "ABCD"[options.index(item.colour)]
    track = item.scene.shapes[0]
    observation = f"<observation>I see a {item.colour} {track.shape} moving.</observation>"
    process = f"<think>The shape is {item.colour}, which is option {letter}.</think>"
    solution = f"<answer>{letter}</answer>"
    return VideoR1Record(
        problem_id=problem_id, problem=QUESTION, options=[f"{'ABCD'[i]}. {c}" for i, c in enumerate(options)],
        solution=solution, answer=letter, path=path, data_type="video", problem_type="multiple choice",
        data_source=DATA_SOURCE + "-hard", observation=observation, process=process,
        output=observation + process + solution, evidence=[f"colour: {item.colour}"],
        difficulty="hard" if item.hard else "easy", option_order=item.order,
    )


@dataclass
class HardSplit:
    name: str
    clips: int
    records: int
    hard: int
    dropped_by_teacher: int
    records_jsonl: Path


@dataclass
class HardTaskSummary:
    out_dir: Path
    seed: int
    splits: dict[str, HardSplit] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"seed": self.seed, "splits": {n: {"clips": s.clips, "records": s.records, "hard": s.hard,
                                                   "dropped_by_teacher": s.dropped_by_teacher}
                                               for n, s in self.splits.items()}}


def synthesize_hard(out_dir: str | Path, spec: HardTaskSpec, seed: int = 0,
                    clips: Mapping[str, int] | None = None) -> HardTaskSummary:
    """Write `<out_dir>/videos/<split>/*.mp4` and `<out_dir>/<split>.jsonl` for the four splits.

    The `sft` split keeps only the items the teacher reads right (counted as dropped otherwise);
    the other splits keep every item. Media paths are relative to `out_dir`.
    """
    out_dir = Path(out_dir)
    clips = dict(clips or {"sft": spec.sft_clips, "rl": spec.rl_clips, "val": spec.val_clips,
                           "test": spec.test_clips})
    unknown = set(clips) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; the task has {list(SPLITS)}")
    summary = HardTaskSummary(out_dir, seed)
    for split, count in clips.items():
        records: list[VideoR1Record] = []
        counts: Counter[str] = Counter()
        for index in range(count):
            item = plan_item(spec, seed, split, index)
            if split == "sft" and not item.teacher_right:
                counts["dropped"] += 1  # the teacher's CoT names the wrong colour: filtered out
                continue
            rel = f"videos/{split}/{index:05d}.mp4"
            write_clip(item.scene, out_dir / rel)
            records.append(hard_record(item, f"hard-{split}-{index:05d}", rel))
            counts["hard"] += int(item.hard)
        path = write_records(out_dir / f"{split}.jsonl", records)
        summary.splits[split] = HardSplit(split, count, len(records), counts["hard"], counts["dropped"], path)
        log.info("hard task %s: %d clips, %d records (%d hard, %d dropped by the teacher)", split, count,
                 len(records), counts["hard"], counts["dropped"])
    return summary
