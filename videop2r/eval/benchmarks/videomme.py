"""Video-MME (lmms-lab/Video-MME), without subtitles: 900 videos, short to hour-long.

Release: ``videomme/test-00000-of-00001.parquet`` (or the same rows as a JSON list), rows
``{video_id, duration, domain, sub_category, url, videoID, question_id, task_type, question,
options: ["A. ...", ...], answer}``; videos are ``data/<videoID>.mp4`` (some ``.MP4``/``.mkv``).
Subtitles are never read (method §6: no subs). Score: accuracy, with per-duration, per-domain and
per-task-type breakdowns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem, option_lines
from videop2r.eval.source import BenchmarkSource


class VideoMME(BenchmarkAdapter):
    name = "videomme"
    title = "VideoMME (no subs)"
    aliases = ("video-mme",)

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        keys = source.first(
            "videomme/test-*.parquet",
            "test-*.parquet",
            "videomme/*.parquet",
            "*.parquet",
            "videomme.json",
            "test.json",
        )
        return dedupe(self._rows(source, keys))

    def _rows(self, source: BenchmarkSource, keys: list[str]) -> Iterator[EvalItem | BadRow]:
        for key in keys:
            for location, row in source.rows(key):
                bad = self.unreadable(location, row)
                yield bad or self.guarded(location, lambda: self._item(location, row))

    def _item(self, location: str, row: dict[str, Any]) -> EvalItem | BadRow:
        ident = str(row.get("question_id") or f"row:{location}")
        groups = {key: str(row[key]) for key in ("duration", "domain", "task_type") if row.get(key)}
        video = str(row.get("videoID") or "").strip()
        options = [str(option) for option in (row.get("options") or [])]
        if not video or not row.get("question") or not options:
            return self.bad(
                ident, "missing_field", f"{location}: needs videoID, question and options", **groups
            )
        lines = option_lines(options)
        answer = str(row.get("answer") or "").strip()
        if answer not in [line[0] for line in lines]:
            return self.bad(
                ident, "answer_not_in_options", f"{location}: answer {answer!r} names no option", **groups
            )
        keys = (
            f"data/{video}.mp4",
            f"data/{video}.MP4",
            f"data/{video}.mkv",
            f"videos/{video}.mp4",
            f"{video}.mp4",
        )
        return self.make_item(
            location,
            ident,
            question=row["question"],
            options=lines,
            answer=answer,
            problem_type="multiple choice",
            metric="accuracy",
            media={"kind": "video", "keys": keys},
            groups=groups,
        )
