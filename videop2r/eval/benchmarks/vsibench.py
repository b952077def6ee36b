"""VSI-Bench (nyu-visionx/VSI-Bench): visual-spatial questions about indoor scene videos.

Release: ``test.jsonl`` (or the Hugging Face Parquet ``test-*.parquet``), rows
``{id, dataset, scene_name, question_type, question, options, ground_truth}``; the video is
``<dataset>/<scene_name>.mp4``. Six question types are multiple choice (options "A. ...",
ground truth a letter) and four are numerical answers.

Scoring: accuracy for multiple-choice questions, MRA (mean relative accuracy over the
thresholds 0.50, 0.55, ..., 0.95, method §2) for numerical ones. The VSI-Bench score is the mean
of the two: (mean MRA over numerical questions + mean accuracy over multiple-choice questions) / 2
(issue 8). The official lmms-eval number — the mean over question types, the three
``object_rel_direction_*`` types merged into one — is reported beside it as ``official_overall``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from videop2r.eval.benchmarks.base import (
    BenchmarkAdapter,
    BenchmarkScore,
    dedupe,
    group_means,
)
from videop2r.eval.items import BadRow, EvalItem, option_lines
from videop2r.eval.source import BenchmarkSource

MCA_QUESTION_TYPES = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
)
NA_QUESTION_TYPES = (
    "object_abs_distance",
    "object_counting",
    "object_size_estimation",
    "room_size_estimation",
)
_REL_DIRECTION = "object_rel_direction"


class VSIBench(BenchmarkAdapter):
    name = "vsibench"
    title = "VSI-Bench"
    aliases = ("vsi-bench", "vsi")

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        keys = source.first("test.jsonl", "test-*.parquet", "data/test-*.parquet", "*.parquet", "test.json")
        return dedupe(self._rows(source, keys))

    def _rows(self, source: BenchmarkSource, keys: list[str]) -> Iterator[EvalItem | BadRow]:
        for key in keys:
            for location, row in source.rows(key):
                bad = self.unreadable(location, row)
                yield bad or self.guarded(location, lambda: self._item(location, row))

    def _item(self, location: str, row: dict[str, Any]) -> EvalItem | BadRow:
        row_id = row.get("id")
        ident = str(row_id) if row_id is not None else f"row:{location}"
        qtype = row.get("question_type")
        missing = [
            name
            for name in ("dataset", "scene_name", "question", "ground_truth")
            if row.get(name) in (None, "")
        ]
        if missing:
            metric = "mra" if qtype in NA_QUESTION_TYPES else "accuracy"
            return self.bad(
                ident, "missing_field", f"{location}: no {missing[0]}", metric, question_type=str(qtype or "")
            )
        media = {"kind": "video", "keys": (f"{row['dataset']}/{row['scene_name']}.mp4",)}
        groups = {"question_type": str(qtype)}
        if qtype in MCA_QUESTION_TYPES:
            options = row.get("options") or []
            if not isinstance(options, list) or not options:
                return self.bad(
                    ident, "missing_field", f"{location}: multiple-choice question without options", **groups
                )
            return self.make_item(
                location,
                ident,
                question=row["question"],
                options=option_lines(options),
                answer=str(row["ground_truth"]).strip(),
                problem_type="multiple choice",
                metric="accuracy",
                media=media,
                groups=groups,
            )
        if qtype in NA_QUESTION_TYPES:
            return self.make_item(
                location,
                ident,
                question=row["question"],
                answer=str(row["ground_truth"]).strip(),
                problem_type="numerical",
                metric="mra",
                media=media,
                groups=groups,
            )
        return self.bad(ident, "unknown_question_type", f"{location}: unknown question_type {qtype!r}")

    def aggregate(self, results: Sequence[Mapping[str, Any]]) -> BenchmarkScore:
        mra = [float(r.get("score", 0.0)) for r in results if r.get("metric") == "mra"]
        acc = [float(r.get("score", 0.0)) for r in results if r.get("metric") != "mra"]
        parts = [sum(values) / len(values) for values in (mra, acc) if values]
        score = sum(parts) / len(parts) if parts else 0.0
        extra = {"official_overall": official_overall(results)}
        if mra:
            extra["mra"] = sum(mra) / len(mra)
        if acc:
            extra["accuracy"] = sum(acc) / len(acc)
        return BenchmarkScore(score, group_means(results), extra)


def official_overall(results: Sequence[Mapping[str, Any]]) -> float:
    """lmms-eval's VSI-Bench overall: mean over question types, the rel-direction types merged first."""
    by_type: dict[str, list[float]] = defaultdict(list)
    for result in results:
        qtype = (result.get("groups") or {}).get("question_type")
        if qtype:
            by_type[qtype].append(float(result.get("score", 0.0)))
    per_type = {qtype: sum(v) / len(v) for qtype, v in by_type.items()}
    directions = [per_type.pop(qtype) for qtype in list(per_type) if qtype.startswith(_REL_DIRECTION + "_")]
    if directions:
        per_type[_REL_DIRECTION] = sum(directions) / len(directions)
    return sum(per_type.values()) / len(per_type) if per_type else 0.0
