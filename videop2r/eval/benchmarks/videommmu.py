"""VideoMMMU (lmms-lab/VideoMMMU): knowledge acquisition from lecture videos, three tracks.

Release: one folder per track — ``Perception/``, ``Comprehension/``, ``Adaptation/`` — each
with ``test-*.parquet`` rows ``{id, question, options, answer, question_type, image, ...}``.
``id`` is ``<split>_<Subject>_<n>``; the video is ``<Category>/<id>.mp4`` where the category
groups subjects as lmms-eval's loader does (Art, Science, Humanities, Engineering, Medicine,
Business). Adaptation questions may carry a question image (``image.bytes``): it is shown after
the clip, as the question text announces ("the image for this question is at the end of the
video").

Scoring (the official rules): multiple-choice questions by option letter; open questions
(``question_type`` other than multiple-choice) by the MMMU open-answer match — numbers equal
after rounding to 2 decimals, or the normalised ground truth found inside the answer. The score
is the accuracy over all questions, with per-track and per-subject breakdowns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem, option_lines
from videop2r.eval.source import AnnotationError, BenchmarkSource
from videop2r.rewards.accuracy import parse_number

TRACKS = ("Perception", "Comprehension", "Adaptation")
MULTIPLE_CHOICE_TYPES = ("multiple-choice", "multiple choice", "perception")
CATEGORIES = {
    "Art": ("Art", "Art_Theory", "Design", "Music"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Humanities": ("History", "Literature", "Sociology", "Psychology"),
    "Engineering": (
        "Agriculture",
        "Architecture_and_Engineering",
        "Computer_Science",
        "Electronics",
        "Energy_and_Power",
        "Materials",
        "Mechanical_Engineering",
    ),
    "Medicine": (
        "Basic_Medical_Science",
        "Clinical_Medicine",
        "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy",
        "Public_Health",
    ),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
}
_CATEGORY_OF = {subject: category for category, subjects in CATEGORIES.items() for subject in subjects}


def subject_of(row_id: str) -> str:
    """``validation_Art_Theory_12`` -> ``Art_Theory``."""
    return "_".join(row_id.split("_")[1:-1])


class VideoMMMU(BenchmarkAdapter):
    name = "videommmu"
    title = "VideoMMMU"
    aliases = ("video-mmmu",)

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        if source.annotation is not None:
            tables = [("all", [source.annotation])]
        else:
            tables = []
            for track in TRACKS:
                keys = source.match(
                    f"{track}/test-*.parquet", f"{track}/*.parquet", f"{track}/*.json", f"{track}.json"
                )
                if keys:
                    tables.append((track, keys))
            if not tables:
                raise AnnotationError(
                    f"{source.uri}: no VideoMMMU track folder ({', '.join(TRACKS)}) with annotations"
                )
        return dedupe(self._rows(source, tables))

    def _rows(
        self, source: BenchmarkSource, tables: list[tuple[str, list[str]]]
    ) -> Iterator[EvalItem | BadRow]:
        for track, keys in tables:
            for key in keys:
                for location, row in source.rows(key):
                    bad = self.unreadable(location, row)
                    yield bad or self.guarded(location, lambda: self._item(track, location, row))

    def _item(self, track: str, location: str, row: dict[str, Any]) -> EvalItem | BadRow:
        raw_id = row.get("id")
        if not raw_id:
            return self.bad(f"row:{location}", "missing_field", f"{location}: no id", track=track)
        raw_id = str(raw_id)
        ident = f"{track}/{raw_id}"
        subject = subject_of(raw_id)
        groups = {"track": track, "subject": subject or "unknown"}
        if not row.get("question") or row.get("answer") in (None, ""):
            return self.bad(ident, "missing_field", f"{location}: no question or answer", **groups)
        category = _CATEGORY_OF.get(subject)
        keys = ([f"{category}/{raw_id}.mp4"] if category else []) + [
            f"videos/{raw_id}.mp4",
            f"{track}/{raw_id}.mp4",
            f"{raw_id}.mp4",
        ]
        media: dict[str, Any] = {"kind": "video", "keys": tuple(keys)}
        image = row.get("image")
        if track == "Adaptation" and isinstance(image, dict) and image.get("bytes"):
            media["append_image"] = bytes(image["bytes"])
        answer = str(row["answer"]).strip()
        options = [str(option) for option in (row.get("options") or []) if str(option).strip()]
        qtype = str(row.get("question_type") or "multiple-choice").strip().lower()
        if qtype in MULTIPLE_CHOICE_TYPES:
            if not options:
                return self.bad(
                    ident, "missing_field", f"{location}: multiple-choice question without options", **groups
                )
            if len(answer) != 1 or not "A" <= answer <= chr(ord("A") + len(options) - 1):
                return self.bad(
                    ident, "answer_not_in_options", f"{location}: answer {answer!r} names no option", **groups
                )
            return self.make_item(
                location,
                ident,
                question=row["question"],
                options=option_lines(options),
                answer=answer,
                problem_type="multiple choice",
                metric="accuracy",
                media=media,
                groups=groups,
            )
        problem_type = "numerical" if parse_number(answer) is not None else "free-form"
        return self.make_item(
            location,
            ident,
            question=row["question"],
            answer=answer,
            problem_type=problem_type,
            metric="open_match",
            media=media,
            groups=groups,
        )
