"""TempCompass (llyx97/TempCompass), multi-choice task: temporal perception of short videos.

Release: ``questions/multi-choice.json``, an object ``{video_id: {dimension: [{question,
answer}, ...]}}`` over the dimensions action, speed, direction, order and attribute_change.
The options are lines of the question ("...?\\nA. x\\nB. y"); the answer is one of them
("B. y"). Videos are ``videos/<video_id>.mp4`` (reversed clips have their own ids,
``<id>_reverse``). Score: accuracy, per-dimension breakdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem
from videop2r.eval.source import AnnotationError, BenchmarkSource

_OPTION_LINE = re.compile(r"^\s*([A-Z])\.\s*(.*\S)\s*$")


def split_question(text: str) -> tuple[str, list[str]]:
    """(question, ["A. x", ...]) of a TempCompass question with its options on their own lines."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if _OPTION_LINE.match(line)), len(lines))
    options = [f"{m.group(1)}. {m.group(2)}" for m in map(_OPTION_LINE.match, lines[first:]) if m]
    return "\n".join(lines[:first]).strip(), options


class TempCompass(BenchmarkAdapter):
    name = "tempcompass"
    title = "TempCompass"
    aliases = ("temp-compass",)

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        key = source.first("questions/multi-choice.json", "multi-choice.json", "multi_choice.json")[0]
        data = source.json(key)
        if not isinstance(data, dict):
            raise AnnotationError(
                f"{source.uri}: {key}: expected an object of video ids, got {type(data).__name__}"
            )
        return dedupe(self._rows(data, key))

    def _rows(self, data: dict[str, Any], key: str) -> Iterator[EvalItem | BadRow]:
        for video_id, dimensions in data.items():
            if not isinstance(dimensions, dict):
                yield self.bad(
                    f"row:{video_id}", "unreadable_row", f"{key} {video_id}: expected an object of dimensions"
                )
                continue
            for dimension, questions in dimensions.items():
                if not isinstance(questions, list):
                    yield self.bad(
                        f"{video_id}/{dimension}",
                        "unreadable_row",
                        f"{key} {video_id}/{dimension}: expected a list of questions",
                    )
                    continue
                for index, row in enumerate(questions):
                    location = f"{key} {video_id}/{dimension}/{index}"
                    bad = self.unreadable(location, row)
                    yield bad or self.guarded(
                        location, lambda: self._item(video_id, dimension, index, location, row)
                    )

    def _item(
        self, video_id: str, dimension: str, index: int, location: str, row: dict[str, Any]
    ) -> EvalItem | BadRow:
        ident = f"{video_id}/{dimension}/{index}"
        groups = {"dimension": dimension}
        question, options = split_question(str(row.get("question") or ""))
        answer = str(row.get("answer") or "").strip()
        if not question or not options:
            return self.bad(ident, "missing_field", f"{location}: question without option lines", **groups)
        letters = [option[0] for option in options]
        if not answer or answer[0] not in letters:
            return self.bad(
                ident, "answer_not_in_options", f"{location}: answer {answer!r} names no option", **groups
            )
        return self.make_item(
            location,
            ident,
            question=question,
            options=tuple(options),
            answer=answer[0],
            problem_type="multiple choice",
            metric="accuracy",
            media={"kind": "video", "keys": (f"videos/{video_id}.mp4", f"{video_id}.mp4")},
            groups=groups,
        )
