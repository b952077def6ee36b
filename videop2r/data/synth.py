"""Synthetic video QA: short clips of coloured shapes, with Video-R1 records for all five problem types.

Made for a tiny model on CPU (shared/notes/tiny-model-learning.md): small frames (84×84 by
default), plain grey background, large motion, libx264 yuv444p crf 10 so colours survive, and
every multiple-choice question type has ONE fixed option order (shuffled options kept a tiny
model at chance). Each record carries the ground-truth `evidence` facts its question depends
on and a short reference `observation` / `process` / `output` in the SPEC §1 template, whose
answer follows from the observation.

Three clip kinds, in a fixed repeating pattern so that a handful of clips covers every type:

- motion: one shape of one colour crosses half to all of the frame in one of four directions →
  colour, shape, direction (multiple choice), description (free-form), distance (regression);
- count: 1–4 shapes wobble in separate cells of a 3×3 grid → how many (numerical);
- word: a word in a built-in 5×7 bitmap font is shown on the middle frames (always on some
  frames the sampler picks) → which word (OCR).

Everything derives from (seed, split, clip index): the same arguments give byte-identical
records and videos, and clip i of a split does not depend on how many clips are made.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import av
import numpy as np

from videop2r.config import DataConfig
from videop2r.data.glyphs import render_word, word_width
from videop2r.data.records import VideoR1Record, write_records
from videop2r.data.vision_rules import SamplingRuleError, linspace_indices, smart_nframes

log = logging.getLogger(__name__)

DATA_SOURCE = "synthetic-shapes"
BACKGROUND = (128, 128, 128)
TEXT_COLOUR = (16, 16, 16)
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 90, 230), "yellow": (235, 205, 30)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
# Fixed option lists: the letter of an answer never changes for a question type.
COLOUR_OPTIONS = ("red", "green", "blue", "yellow")
SHAPE_OPTIONS = ("circle", "square", "triangle", "star")  # star is never drawn: a distractor
DIRECTION_OPTIONS = ("left", "right", "up", "down")
WORDS = (
    "CAT", "DOG", "SUN", "BOX", "CUP", "KEY", "MAP", "PEN", "HAT", "BUS", "FOX", "OWL",
    "FISH", "BIRD", "TREE", "MOON", "STAR", "LAMP", "DOOR", "BOOK", "SHIP", "FROG", "CAKE", "KITE",
    "APPLE", "HOUSE", "TRAIN", "CLOCK", "WATER", "PLANT", "CHAIR", "BREAD",
)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")

# question kind -> (problem_type, clip kind)
QUESTIONS = {
    "colour": ("multiple choice", "motion"),
    "shape": ("multiple choice", "motion"),
    "direction": ("multiple choice", "motion"),
    "description": ("free-form", "motion"),
    "distance": ("regression", "motion"),
    "count": ("numerical", "count"),
    "word": ("OCR", "word"),
}
CLIP_PATTERN = ("motion", "count", "word", "motion", "motion")
MAX_COUNT = 4


@dataclass(frozen=True)
class ShapeTrack:
    """One shape: top-left corner at frame t is (x + dx·t, y + dy·t) plus a horizontal wobble."""

    shape: str
    colour: str
    size: int
    x: int
    y: int
    dx: int = 0
    dy: int = 0
    wobble: int = 0  # amplitude in px of a sine sway over the clip (count clips)
    phase: float = 0.0

    def corner(self, t: int, frames: int) -> tuple[int, int]:
        sway = round(self.wobble * math.sin(2 * math.pi * t / frames + self.phase)) if self.wobble else 0
        return self.x + self.dx * t + sway, self.y + self.dy * t

    def centre(self, t: int, frames: int) -> tuple[float, float]:
        x, y = self.corner(t, frames)
        return x + self.size / 2, y + self.size / 2


@dataclass(frozen=True)
class Scene:
    """What one clip shows, frame by frame."""

    kind: str  # motion | count | word
    size: int  # frame side in pixels
    fps: int
    frames: int
    shapes: tuple[ShapeTrack, ...] = ()
    word: str | None = None
    word_frames: tuple[int, int] = (0, -1)  # first and last frame (inclusive) showing the word

    def render(self, t: int) -> np.ndarray:
        """Frame t as (size, size, 3) uint8 RGB."""
        image = np.empty((self.size, self.size, 3), dtype=np.uint8)
        image[:] = BACKGROUND
        for track in self.shapes:
            _draw_shape(image, track, *track.corner(t, self.frames))
        if self.word and self.word_frames[0] <= t <= self.word_frames[1]:
            scale = _text_scale(self.size, len(self.word))
            mask = render_word(self.word, scale)
            top = (self.size - mask.shape[0]) // 2
            left = (self.size - mask.shape[1]) // 2
            region = image[top : top + mask.shape[0], left : left + mask.shape[1]]
            region[mask] = TEXT_COLOUR
        return image


def _text_scale(size: int, letters: int) -> int:
    scale = max(1, size // 40)
    while scale > 1 and word_width(letters, scale) > size - 4:
        scale -= 1
    return scale


def _draw_shape(image: np.ndarray, track: ShapeTrack, x: int, y: int) -> None:
    s = track.size
    yy, xx = np.mgrid[0:s, 0:s]
    if track.shape == "square":
        mask = np.ones((s, s), dtype=bool)
    elif track.shape == "circle":
        r = s / 2
        mask = (xx + 0.5 - r) ** 2 + (yy + 0.5 - r) ** 2 <= r * r
    elif track.shape == "triangle":  # apex up, base at the bottom
        mask = np.abs(xx + 0.5 - s / 2) <= (yy + 1) / 2
    else:
        raise ValueError(f"cannot draw shape {track.shape!r}")
    h, w = image.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + s, h), min(x + s, w)
    if top >= bottom or left >= right:
        return
    sub = mask[top - y : bottom - y, left - x : right - x]
    image[top:bottom, left:right][sub] = COLOURS[track.colour]


# --------------------------------------------------------------------------- scenes


def _shape_size(size: int) -> int:
    return max(6, int(round(size * 0.2)) // 2 * 2)


def _motion_scene(rng: np.random.Generator, size: int, fps: int, frames: int) -> Scene:
    s = _shape_size(size)
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
    s = _shape_size(size)
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


# --------------------------------------------------------------------------- questions


def _letter(options: Sequence[str], value: str) -> str:
    return "ABCDEFGH"[options.index(value)]


def _options(options: Sequence[str]) -> list[str]:
    return [f"{_letter(options, o)}. {o}" for o in options]


def _describe(track: ShapeTrack) -> str:
    return f"a {track.colour} {track.shape}"


def _direction(track: ShapeTrack) -> str:
    if track.dx:
        return "left" if track.dx < 0 else "right"
    return "up" if track.dy < 0 else "down"


def _count_phrase(tracks: Sequence[ShapeTrack]) -> str:
    names = [_describe(t) for t in tracks]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    noun = "shape" if len(tracks) == 1 else "shapes"
    return f"{NUMBER_WORDS[len(tracks)]} {noun}: {listed}"


@dataclass(frozen=True)
class QA:
    kind: str
    problem: str
    options: list[str]
    answer: str
    evidence: list[str]
    observation: str
    think: str


def _questions(scene: Scene, wanted: Iterable[str]) -> list[QA]:
    wanted = set(wanted)
    out: list[QA] = []
    if scene.kind == "motion":
        track = scene.shapes[0]
        colour, shape, direction = track.colour, track.shape, _direction(track)
        seen = f"I see {_describe(track)} moving {direction}."
        if "colour" in wanted:
            letter = _letter(COLOUR_OPTIONS, colour)
            out.append(QA("colour", "What colour is the moving shape?", _options(COLOUR_OPTIONS), letter,
                          [f"colour: {colour}"], seen, f"The shape is {colour}, which is option {letter}."))
        if "shape" in wanted:
            letter = _letter(SHAPE_OPTIONS, shape)
            out.append(QA("shape", "What shape moves in the video?", _options(SHAPE_OPTIONS), letter,
                          [f"shape: {shape}"], seen, f"The shape is a {shape}, which is option {letter}."))
        if "direction" in wanted:
            letter = _letter(DIRECTION_OPTIONS, direction)
            out.append(QA("direction", "In which direction does the shape move?", _options(DIRECTION_OPTIONS), letter,
                          [f"direction: {direction}"], seen, f"It moves {direction}, which is option {letter}."))
        if "description" in wanted:
            answer = f"A {colour} {shape} moves {direction}."
            out.append(QA("description", "Describe the video in one short sentence.", [], answer,
                          [f"colour: {colour}", f"shape: {shape}", f"direction: {direction}"], seen,
                          f"The sentence should name the colour {colour}, the shape {shape} and the motion {direction}."))
        if "distance" in wanted:
            axis = "x" if track.dx else "y"
            start = track.corner(0, scene.frames)[0 if track.dx else 1]
            end = track.corner(scene.frames - 1, scene.frames)[0 if track.dx else 1]
            distance = abs(end - start)
            out.append(QA("distance", "How many pixels does the shape travel from the first frame to the last frame?",
                          [], str(distance), [f"direction: {direction}", f"distance: {distance}"],
                          f"I see {_describe(track)} moving {direction} from {axis}={start} to {axis}={end}.",
                          f"It goes from {axis}={start} to {axis}={end}, so it travels {distance} pixels."))
    elif scene.kind == "count" and "count" in wanted:
        n = len(scene.shapes)
        out.append(QA("count", "How many shapes are in the video?", [], str(n), [f"count: {n}"],
                      f"I see {_count_phrase(scene.shapes)}.", f"Counting them gives {n}."))
    elif scene.kind == "word" and "word" in wanted:
        out.append(QA("word", "What word is written in the video?", [], scene.word, [f"word: {scene.word}"],
                      f"I see the word {scene.word} written in the middle of the frame.",
                      f"The word is {scene.word}."))
    return out


def _record(qa: QA, problem_id: str, path: str) -> VideoR1Record:
    observation = f"<observation>{qa.observation}</observation>"
    process = f"<think>{qa.think}</think>"
    solution = f"<answer>{qa.answer}</answer>"
    return VideoR1Record(
        problem_id=problem_id,
        problem=qa.problem,
        options=qa.options,
        solution=solution,
        answer=qa.answer,
        path=path,
        data_type="video",
        problem_type=QUESTIONS[qa.kind][0],
        data_source=DATA_SOURCE,
        observation=observation,
        process=process,
        output=observation + process + solution,
        evidence=qa.evidence,
    )


# --------------------------------------------------------------------------- video files


def write_clip(scene: Scene, path: Path, crf: int = 10) -> None:
    """Encode a scene as H.264 (yuv444p, one encoder thread: deterministic bytes) in an mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(scene.fps))
        stream.width = stream.height = scene.size
        stream.pix_fmt = "yuv444p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "medium"}
        for t in range(scene.frames):
            frame = av.VideoFrame.from_ndarray(scene.render(t), format="rgb24")
            frame.pts = t
            frame.time_base = Fraction(1, scene.fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


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


def _split_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _plan_clip(seed: int, split: str, index: int, kinds: Sequence[str], size: int, fps: int,
               durations: Sequence[int], config: DataConfig) -> Scene:
    rng = np.random.default_rng([seed, _split_key(split), index])
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
            for qa in _questions(scene, questions):
                records.append(_record(qa, f"synth-{split}-{index:05d}-{qa.kind}", rel))
        jsonl = write_records(out_dir / f"{split}.jsonl", records)
        json_path = write_records(out_dir / f"{split}.json", records) if write_json else None
        counts = Counter(r.problem_type for r in records)
        summary.splits[split] = SplitSummary(split, clips, len(records), dict(sorted(counts.items())), jsonl, json_path)
        log.info("synth %s: %d clips, %d records -> %s", split, clips, len(records), jsonl)
    return summary
