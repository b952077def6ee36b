"""The questions a synthetic scene answers, and the Video-R1 record of each (method §1 template).

Every multiple-choice question type has ONE fixed option order (shuffled options kept a tiny
model at chance); each record carries the ground-truth `evidence` its question depends on and a
reference observation / process / output whose answer follows from the observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from videop2r.data.records import VideoR1Record
from videop2r.data.shapes import Scene, ShapeTrack

DATA_SOURCE = "synthetic-shapes"
# Fixed option lists: the letter of an answer never changes for a question type.
COLOUR_OPTIONS = ("red", "green", "blue", "yellow")
SHAPE_OPTIONS = ("circle", "square", "triangle", "star")  # star is never drawn: a distractor
DIRECTION_OPTIONS = ("left", "right", "up", "down")
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


def questions_of(scene: Scene, wanted: Iterable[str]) -> list[QA]:
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


def record_of(qa: QA, problem_id: str, path: str) -> VideoR1Record:
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
