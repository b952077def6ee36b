"""The synthetic set, and any data in the Video-R1 / VideoP2R record layout (method §7).

Release: the records file `videop2r data synth` writes (``eval.jsonl``; or a URI naming any
``.json``/``.jsonl`` records file, e.g. Video-R1's own ``eval_*.json``), ``path`` relative to
the file's folder. All five problem types are scored with Acc_t (method §2). The breakdown is by
question kind — the key of the first ground-truth fact ("colour", "shape", ...), as the
trainer's held-out evaluation groups it (`videop2r.train.evaluate.question_kind`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from videop2r.data.records import parse_record
from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem, option_lines
from videop2r.eval.source import BenchmarkSource
from videop2r.data.records import question_kind


class Synthetic(BenchmarkAdapter):
    name = "synthetic"
    title = "Synthetic"
    aliases = ("synth", "video-r1", "records")
    paper_column = False

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        keys = source.first("eval.jsonl", "eval.json", "test.jsonl", "test.json", "*.jsonl")
        return dedupe(self._rows(source, keys[:1]))

    def _rows(self, source: BenchmarkSource, keys: list[str]) -> Iterator[EvalItem | BadRow]:
        for key in keys:
            folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            for location, row in source.rows(key):
                bad = self.unreadable(location, row)
                yield bad or self.guarded(location, lambda: self._item(location, row, folder))

    def _item(self, location: str, row: dict[str, Any], folder: str) -> EvalItem | BadRow:
        ident = str(row.get("problem_id")) if row.get("problem_id") is not None else f"row:{location}"
        try:
            record = parse_record(row)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"]) or "record"
            return self.bad(ident, "invalid_record", f"{location}: {where}: {err['msg']}")
        return self.make_item(
            location,
            ident,
            question=record.problem,
            options=option_lines(record.options),
            answer=record.ground_truth or "",
            problem_type=record.problem_type,
            metric="accuracy",
            media={"kind": record.data_type, "keys": (folder + record.media_relpath,)},
            data_type=record.data_type,
            groups={"question": question_kind(record)},
            evidence=tuple(record.evidence or ()),
        )
