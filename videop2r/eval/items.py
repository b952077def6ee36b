"""What a benchmark adapter yields: questions (`EvalItem`) and the rows it could not read (`BadRow`).

Every benchmark is brought to one shape: a question with its `Options:` lines, the ground truth,
the method §2 problem type that picks the prompt's answer hint, the metric that scores it, and
where its media lives under the benchmark's folder. A row that cannot become an item is not
dropped: it is a `BadRow`, recorded and scored as wrong like any failed item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Metric = Literal["accuracy", "mra", "open_match"]
MediaKind = Literal["video", "frames", "image"]
_LABELLED = re.compile(r"^\s*[A-Z]\s*[.):]\s")


class MediaRef(BaseModel):
    """Where an item's medium lives, relative to its benchmark's folder.

    `keys` are candidate object keys, tried in order (releases differ in extension or folder:
    ``data/x.mp4`` or ``data/x.mkv``). A ``frames`` medium is a folder of images sampled at
    `frames_fps`. `bound` = (start_s, end_s) restricts a video to a segment (MVBench).
    `append_image` is an image (bytes) shown after the clip (VideoMMMU adaptation questions).
    """

    model_config = ConfigDict(frozen=True)

    kind: MediaKind = "video"
    keys: tuple[str, ...] = Field(min_length=1)
    bound: tuple[float, float] | None = None
    frames_fps: float = Field(3.0, gt=0)
    append_image: bytes | None = Field(default=None, repr=False)

    @field_validator("keys", mode="before")
    @classmethod
    def _keys_as_tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class EvalItem(BaseModel):
    """One benchmark question, ready for the method §1 prompt and for scoring."""

    model_config = ConfigDict(frozen=True)

    benchmark: str
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    # -- "A. text" lines for multiple choice, empty otherwise
    options: tuple[str, ...] = ()
    # -- the ground truth: an option letter, a number or a text
    answer: str
    # -- method §2 problem type (selects the prompt's answer hint and the Acc_t rule)
    problem_type: Literal["multiple choice", "numerical", "OCR", "free-form", "regression"]
    metric: Metric = "accuracy"
    media: MediaRef
    data_type: Literal["video", "image"] = "video"
    # -- breakdowns of the summary, e.g. {"question_type": "object_counting"}
    groups: dict[str, str] = Field(default_factory=dict)
    # -- ground-truth facts (synthetic set; the evidence judge and the by-question breakdown use them)
    evidence: tuple[str, ...] = ()

    def prompt_fields(self) -> dict[str, Any]:
        """The fields `videop2r.prompting` builds the prompt from (a Video-R1-like record)."""
        return {
            "problem": self.question,
            "options": list(self.options),
            "problem_type": self.problem_type,
            "data_type": self.data_type,
        }


@dataclass(frozen=True)
class BadRow:
    """An annotation row that could not become an item; it counts as a wrong answer."""

    benchmark: str
    id: str  # the row's own id when it has one, else "row:<location>"
    reason: str  # e.g. missing_field, answer_not_in_options, unknown_question_type, duplicate_id
    message: str
    groups: dict[str, str] = field(default_factory=dict)
    # -- the metric the row would have been scored with (VSI-Bench averages MRA and accuracy apart)
    metric: str = "accuracy"


def option_lines(options: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Options as "A. text" lines; an option that carries its letter already ("A. x") is kept as is."""
    return tuple(
        option.strip() if _LABELLED.match(option) else f"{letter_of(index)}. {option.strip()}"
        for index, option in enumerate(options)
    )


def letter_of(index: int) -> str:
    return chr(ord("A") + index)
