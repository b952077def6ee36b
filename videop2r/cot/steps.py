"""The three steps of method §3 for one record, each a small function over the libraries.

1. `generate` — the teacher VLM writes a method §1 output for the record's question, given its
   video or image (the method §1 prompt of `videop2r.prompting`, temperature 0 by default).
2. `verify` — the output must match the template (both processes well-formed, method §4) and its
   answer must score Acc_t ≥ `min_accuracy` (method §2; 0.6 in the paper), scored by
   `videop2r.rewards.reward_parts`.
3. `judge` — the perception judge sees the question, the correct answer and the observation
   only (method §5; `videop2r.rewards.requests.judge_item` builds the request, the hack guard
   runs first); only "Yes" is kept.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from videop2r.data.media import MediaError
from videop2r.data.records import VideoR1Record
from videop2r.eval.clips import MediaLoader, media_error_reason
from videop2r.eval.items import MediaRef
from videop2r.eval.policy import Policy, RequestFailed, RequestRejected
from videop2r.rewards import reward_parts, segment_response
from videop2r.rewards.client import RewardClient, RewardRequestError, RewardServiceError
from videop2r.rewards.judges.schema import JudgeResult
from videop2r.rewards.requests import judge_item, score_item

log = logging.getLogger(__name__)
TEMPLATE = "template"
LOW_ACCURACY = "low_accuracy"


def record_fields(record: VideoR1Record) -> dict[str, Any]:
    return {
        "problem": record.problem,
        "options": list(record.options),
        "problem_type": record.problem_type,
        "data_type": record.data_type,
    }


async def generate(record: VideoR1Record, teacher: Policy, loader: MediaLoader) -> dict[str, Any]:
    """Step 1 ledger line: ``status`` ok (with ``output``), bad_media, rejected, or failed (retried later)."""
    ident = str(record.problem_id)
    try:
        media = await asyncio.to_thread(
            loader.load, MediaRef(kind=record.data_type, keys=(record.media_relpath,))
        )
    except MediaError as exc:
        return {
            "id": ident,
            "status": "bad_media",
            "reason": media_error_reason(exc),
            "error": f"{exc.reason}: {exc}",
        }
    except Exception as exc:  # noqa: BLE001 - one odd file must not end the run
        log.exception("record %s: unexpected error loading %s", ident, record.media_relpath)
        return {
            "id": ident,
            "status": "bad_media",
            "reason": "bad_media",
            "error": f"{type(exc).__name__}: {exc}",
        }
    try:
        output = await teacher.respond(record_fields(record), media)
    except RequestRejected as exc:
        return {"id": ident, "status": "rejected", "error": str(exc)}
    except RequestFailed as exc:
        return {"id": ident, "status": "failed", "error": str(exc)}
    return {"id": ident, "status": "ok", "output": output}


@dataclass(frozen=True)
class Verification:
    kept: bool
    reason: str  # ok | template | low_accuracy
    accuracy: float
    perception_format: int
    reasoning_format: int

    def line(self, ident: str) -> dict[str, Any]:
        return {
            "id": ident,
            "kept": self.kept,
            "reason": self.reason,
            "accuracy": self.accuracy,
            "perception_format": self.perception_format,
            "reasoning_format": self.reasoning_format,
        }


def verify(record: VideoR1Record, output: str, min_accuracy: float) -> Verification:
    """Step 2: template of both processes, then Acc_t of the answer against the record's truth."""
    request = score_item(record, str(record.problem_id), output)
    parts = reward_parts(request)
    perception_format, reasoning_format = parts.perception.format, parts.reasoning.format
    accuracy = float(parts.reasoning.accuracy or 0.0)  # always known: Acc_t needs no judge
    if not (perception_format and reasoning_format):
        return Verification(False, TEMPLATE, accuracy, perception_format, reasoning_format)
    if accuracy < min_accuracy:
        return Verification(False, LOW_ACCURACY, accuracy, perception_format, reasoning_format)
    return Verification(True, "ok", accuracy, perception_format, reasoning_format)


async def judge(record: VideoR1Record, output: str, client: RewardClient) -> dict[str, Any]:
    """Step 3 ledger line: ``sufficient`` (judge said Yes), ``refused`` (hack guard), ``error`` (retried later)."""
    ident = str(record.problem_id)
    item = judge_item(record, ident, output)
    if item is None:  # verified outputs always have one; kept for safety
        return _judge_line(ident, JudgeResult(id=ident, sufficient=False, reason="no observation"))
    try:
        (result,) = await client.judge([item])
    except (RewardServiceError, RewardRequestError) as exc:
        return _judge_line(ident, JudgeResult(id=ident, sufficient=False, error=True, reason=str(exc)))
    return _judge_line(ident, result)


def _judge_line(ident: str, result: JudgeResult) -> dict[str, Any]:
    """The judge ledger's line for a verdict."""
    return {
        "id": ident,
        "sufficient": bool(result.sufficient),
        "refused": bool(result.refused),
        "error": bool(result.error),
        "reason": result.reason,
    }


def cot_record(record: VideoR1Record, output: str, teacher: str) -> dict[str, Any]:
    """The kept record in the VideoP2R CoT layout (method §7): the question's fields plus
    ``observation`` / ``process`` (each with its tags, as the released set and `videop2r data synth`
    write them) and the whole ``output``, which `videop2r sft` trains on."""
    text = output.strip()
    segments = segment_response(text)
    observation = segments.perception.of(text).strip() if segments.perception else ""
    reasoning = segments.reasoning.of(text).strip() if segments.reasoning else ""
    process = reasoning[: reasoning.find("<answer>")].strip() if "<answer>" in reasoning else reasoning
    return {
        **record.to_json(),
        "observation": observation,
        "process": process,
        "output": text,
        "cot_teacher": teacher,
    }
