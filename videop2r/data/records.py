"""Video-R1 / VideoP2R question records (method §7), read as they are and validated with pydantic.

A record is one question about one video or image: `problem`, `options` (multiple choice),
`solution` (``<answer>..</answer>``), `path` to the media, `data_type`, `problem_type`,
`data_source`; the CoT set adds `observation`, `process`, `output`; our synthetic set adds
`evidence`, the ground-truth facts the question depends on. Unknown fields are kept.

`read_records` reads a JSON list or a JSONL file. A record that does not validate is logged
once (with its problem_id, or its line / index), counted in
``videop2r_samples_skipped_total{reason=...}`` and returned in the skipped list; the others
are returned. A file that cannot be read at all raises `RecordsError`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videop2r.metrics import metric

log = logging.getLogger(__name__)

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")
ProblemType = Literal["multiple choice", "numerical", "OCR", "free-form", "regression"]
DataType = Literal["video", "image"]

# Spellings met in the wild for the five types, folded to the canonical one.
_PROBLEM_TYPE_ALIASES = {
    "multiple choice": "multiple choice",
    "multiple_choice": "multiple choice",
    "multiple-choice": "multiple choice",
    "mc": "multiple choice",
    "numerical": "numerical",
    "numeric": "numerical",
    "ocr": "OCR",
    "free-form": "free-form",
    "free form": "free-form",
    "free_form": "free-form",
    "freeform": "free-form",
    "regression": "regression",
}
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

SKIP_INVALID_JSON = "invalid_json"
SKIP_INVALID_RECORD = "invalid_record"


class RecordsError(ValueError):
    """A records file that cannot be read at all (missing, not JSON, wrong top level)."""


class VideoR1Record(BaseModel):
    """One Video-R1 / VideoP2R question, fields as released; unknown fields are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    problem_id: int | str
    problem: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list)
    solution: str | None = None
    answer: str | None = None
    path: str = Field(min_length=1)
    data_type: DataType
    problem_type: ProblemType
    data_source: str | None = None
    # -- CoT set (VideoP2R-CoT / Video-R1-CoT): the reference output in the method §1 template
    observation: str | None = None
    process: str | None = None
    output: str | None = None
    # -- synthetic set: ground-truth facts the question depends on, e.g. "colour: red"
    evidence: list[str] | None = None

    @field_validator("problem_type", mode="before")
    @classmethod
    def _fold_problem_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _PROBLEM_TYPE_ALIASES.get(value.strip().lower(), value)
        return value

    @field_validator("data_type", mode="before")
    @classmethod
    def _fold_data_type(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_as_text(cls, value: Any) -> Any:
        # Some releases store numerical answers as numbers.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _has_ground_truth(self) -> "VideoR1Record":
        if self.ground_truth is None:
            raise ValueError("no ground truth: neither <answer>..</answer> in solution nor an answer field")
        if self.problem_type == "multiple choice" and not self.options:
            raise ValueError("multiple choice record without options")
        return self

    @property
    def ground_truth(self) -> str | None:
        """The answer text: inside the first ``<answer>`` of `solution`, else the `answer` field."""
        if self.solution:
            found = _ANSWER_RE.search(self.solution)
            if found:
                return found.group(1).strip()
        if self.answer is not None and self.answer.strip():
            return self.answer.strip()
        return None

    @property
    def media_relpath(self) -> str:
        """`path` as a clean relative POSIX path (``./a/b.mp4`` -> ``a/b.mp4``)."""
        return str(PurePosixPath(self.path.replace("\\", "/").removeprefix("./")))

    def media_path(self, media_root: str | Path) -> Path:
        """The media file under `media_root`."""
        return Path(media_root) / self.media_relpath

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data, unknown fields included, unset optional fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class SkippedRecord:
    """A record that was not accepted, and why."""

    location: str  # "line 12" (JSONL) or "index 3" (JSON list)
    problem_id: int | str | None
    reason: str  # invalid_json | invalid_record
    message: str


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg'].removeprefix('Value error, ')}{more}"


def parse_record(data: Any) -> VideoR1Record:
    """Validate one record (a dict); raises pydantic's `ValidationError`."""
    return VideoR1Record.model_validate(data)


def _skip(skipped: list[SkippedRecord], source: str, location: str, problem_id: Any, reason: str, message: str) -> None:
    ident = f"problem_id={problem_id!r}" if problem_id is not None else "record without problem_id"
    log.warning("skipping %s (%s %s): %s", ident, source, location, message)
    metric("videop2r_samples_skipped_total").labels(reason=reason).inc()
    skipped.append(SkippedRecord(location, problem_id, reason, message))


def _accept(item: Any, source: str, location: str, records: list, skipped: list) -> None:
    problem_id = item.get("problem_id") if isinstance(item, dict) else None
    if not isinstance(item, dict):
        _skip(skipped, source, location, None, SKIP_INVALID_RECORD, f"expected an object, got {type(item).__name__}")
        return
    try:
        records.append(parse_record(item))
    except ValidationError as exc:
        _skip(skipped, source, location, problem_id, SKIP_INVALID_RECORD, _first_error(exc))


def _looks_like_json_list(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() == ".jsonl":
        return False
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"[")


def read_records(path: str | Path) -> tuple[list[VideoR1Record], list[SkippedRecord]]:
    """Records of a ``.json`` file (a list) or a ``.jsonl`` file (one object a line).

    Bad records are logged, counted and returned as `SkippedRecord`s; good ones are returned in
    file order. Raises `RecordsError` if the file is missing or is not a JSON list / JSONL.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordsError(f"records file not found: {path}")
    records: list[VideoR1Record] = []
    skipped: list[SkippedRecord] = []
    source = path.name
    if _looks_like_json_list(path):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordsError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise RecordsError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
        for index, item in enumerate(data):
            _accept(item, source, f"index {index}", records, skipped)
        return records, skipped
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                _skip(skipped, source, f"line {number}", None, SKIP_INVALID_JSON, f"not valid JSON: {exc.msg}")
                continue
            _accept(item, source, f"line {number}", records, skipped)
    return records, skipped


def write_records(path: str | Path, records: Iterable[VideoR1Record | dict[str, Any]]) -> Path:
    """Write records as a JSON list (``.json``) or JSONL (any other suffix), byte-stable.

    The same records give the same bytes (field order as in the model, no timestamps), which the
    synthetic set relies on for determinism. The file appears atomically (temp file + rename).
    """
    path = Path(path)
    rows = [r.to_json() if isinstance(r, VideoR1Record) else r for r in records]
    if path.suffix.lower() == ".json":
        text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    else:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def question_kind(record: Any) -> str:
    """What a question asks about: the fact a multiple-choice question checks ("colour"), else its type."""
    if record.problem_type == "multiple choice" and record.evidence and len(record.evidence) == 1:
        return str(record.evidence[0]).split(":", 1)[0].strip() or record.problem_type
    return record.problem_type
