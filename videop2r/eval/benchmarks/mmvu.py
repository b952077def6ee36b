"""MMVU (yale-nlp/MMVU), multiple-choice subset: expert-level, multi-discipline video questions.

Release: ``validation.json`` (and ``test.json``), a list of ``{id, video, question_type,
metadata: {subject, ...}, question, choices: {"A": text, ...}, answer}``. ``video`` is the
Hugging Face URL of the file (``.../resolve/main/videos/<Subject>/<n>.mp4``); the media key is
the part after ``resolve/main/``. Only ``question_type == "multiple-choice"`` rows are
evaluated (method §6: MMVU (MC)); open-ended rows are left out, not counted. Choices with empty
text are not options. Score: accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem
from videop2r.eval.source import BenchmarkSource

_HF_PREFIX = "/resolve/main/"


def media_key(video: str) -> str:
    """The release-relative key of an MMVU video field (a Hugging Face URL or a relative path)."""
    video = video.strip()
    if _HF_PREFIX in video:
        return video.split(_HF_PREFIX, 1)[1]
    if "://" in video:
        return (
            "videos/" + video.rsplit("/videos/", 1)[-1] if "/videos/" in video else video.rsplit("/", 1)[-1]
        )
    return video.removeprefix("./")


def choice_options(choices: Any) -> tuple[list[str], list[str]] | None:
    """(letters, "A. text" lines) of a choices dict, skipping empty texts; None if it is not a dict."""
    if not isinstance(choices, dict):
        return None
    letters = [letter for letter in sorted(choices) if str(choices[letter] or "").strip()]
    return letters, [f"{letter}. {str(choices[letter]).strip()}" for letter in letters]


def checked_choices(adapter: BenchmarkAdapter, ident: str, location: str, row: dict[str, Any],
                    groups: dict[str, str]) -> tuple[tuple[str, ...], str] | BadRow:
    """(option lines, answer letter) of a row's `choices` dict and `answer`, or the row's BadRow."""
    parsed = choice_options(row.get("choices"))
    if not parsed or not parsed[0]:
        return adapter.bad(ident, "missing_field", f"{location}: no choices", **groups)
    letters, options = parsed
    answer = str(row.get("answer") or "").strip()
    if answer not in letters:
        return adapter.bad(ident, "answer_not_in_options", f"{location}: answer {answer!r} is not a choice",
                           **groups)
    return tuple(options), answer


class MMVU(BenchmarkAdapter):
    name = "mmvu"
    title = "MMVU (MC)"
    aliases = ("mmvu-mc",)

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        keys = source.first("validation.json", "data/validation.json", "test.json", "data/test.json")
        return dedupe(self._rows(source, keys[:1]))

    def _rows(self, source: BenchmarkSource, keys: list[str]) -> Iterator[EvalItem | BadRow]:
        for key in keys:
            for location, row in source.rows(key):
                bad = self.unreadable(location, row)
                if bad is not None:
                    yield bad
                elif str(row.get("question_type", "")).strip().lower() == "multiple-choice":
                    yield self.guarded(location, lambda: self._item(location, row))

    def _item(self, location: str, row: dict[str, Any]) -> EvalItem | BadRow:
        ident = str(row.get("id") or f"row:{location}")
        subject = str((row.get("metadata") or {}).get("subject") or "unknown")
        groups = {"subject": subject}
        if not row.get("video") or not row.get("question"):
            return self.bad(ident, "missing_field", f"{location}: no video or question", **groups)
        checked = checked_choices(self, ident, location, row, groups)
        if isinstance(checked, BadRow):
            return checked
        options, answer = checked
        return self.make_item(
            location,
            ident,
            question=row["question"],
            options=options,
            answer=answer,
            problem_type="multiple choice",
            metric="accuracy",
            media={"kind": "video", "keys": (media_key(str(row["video"])),)},
            groups=groups,
        )
