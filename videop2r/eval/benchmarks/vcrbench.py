"""VCR-Bench (VLM-Reasoning/VCR-Bench), multiple-choice subset: video chain-of-thought reasoning.

Release: ``meta_info_video.json`` (at the root or in ``v1/videos/``), a list of ``{id,
video_path, duration, dimension, question, multiple-choice, choices: {"A": text, ...}, answer,
reasoning}``; ``video_path`` (``video/<source>/<name>.mp4``) is relative to the folder of that
file. Only rows with ``multiple-choice: true`` are evaluated (method §6: VCR-Bench (MC)). Their
``question`` already ends with the options ("...?A. x\\nB. y\\n"); that tail is cut, since the
prompt appends the options itself. Score: accuracy, with per-dimension and per-duration
(0-60 s, 60-300 s, 300+ s, as the official script bins it) breakdowns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.benchmarks.mmvu import checked_choices
from videop2r.eval.items import BadRow, EvalItem
from videop2r.eval.source import BenchmarkSource


def strip_options(question: str, choices: dict[str, str]) -> str:
    """The question without the option lines a VCR-Bench row appends to it."""
    first = str(choices.get("A") or "").strip()
    if first:
        found = re.search(r"\(?A[.):]\s*" + re.escape(first), question)
        if found and found.start() > 0:
            return question[: found.start()].rstrip()
    return question.strip()


def duration_bin(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return "unknown"
    return "0-60" if value <= 60 else "60-300" if value <= 300 else "300+"


class VCRBench(BenchmarkAdapter):
    name = "vcrbench"
    title = "VCR-Bench (MC)"
    aliases = ("vcr-bench", "vcr")

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        keys = source.first(
            "meta_info_video.json", "v1/videos/meta_info_video.json", "videos/meta_info_video.json"
        )
        key = keys[0]
        root = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        return dedupe(self._rows(source, key, root))

    def _rows(self, source: BenchmarkSource, key: str, root: str) -> Iterator[EvalItem | BadRow]:
        for location, row in source.rows(key):
            bad = self.unreadable(location, row)
            if bad is not None:
                yield bad
            elif row.get("multiple-choice") is True:
                yield self.guarded(location, lambda: self._item(location, row, root))

    def _item(self, location: str, row: dict[str, Any], root: str) -> EvalItem | BadRow:
        ident = str(row.get("id")) if row.get("id") is not None else f"row:{location}"
        groups = {
            "dimension": str(row.get("dimension") or "unknown"),
            "duration": duration_bin(row.get("duration")),
        }
        if not row.get("video_path") or not row.get("question"):
            return self.bad(ident, "missing_field", f"{location}: no video_path or question", **groups)
        checked = checked_choices(self, ident, location, row, groups)
        if isinstance(checked, BadRow):
            return checked
        options, answer = checked
        path = str(row["video_path"]).removeprefix("./")
        return self.make_item(
            location,
            ident,
            question=strip_options(str(row["question"]), row["choices"]),
            options=options,
            answer=answer,
            problem_type="multiple choice",
            metric="accuracy",
            media={"kind": "video", "keys": (root + path,)},
            groups=groups,
        )
