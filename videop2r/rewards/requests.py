"""The requests the reward services take for one response, built from its record.

One place for the driver (`videop2r.train.group_rewards`) and the CoT pipeline (`videop2r.cot`),
so a field added to a record reaches both services the same way.
"""

from __future__ import annotations

from typing import Any

from videop2r.rewards.segments import segment_response


def score_item(record: Any, item_id: str, response: str) -> dict[str, Any]:
    """A reward-accuracy request (`videop2r rewards score` input line) for one response."""
    item: dict[str, Any] = {"id": item_id, "problem_type": record.problem_type, "response": response}
    if record.solution is not None:
        item["solution"] = record.solution
    if record.answer is not None:
        item["answer"] = record.answer
    if record.options:
        item["options"] = list(record.options)
    return item


def judge_item(record: Any, item_id: str, response: str) -> dict[str, Any] | None:
    """A reward-judge request for the response's observation; None when it has no observation."""
    segments = segment_response(response)
    if segments.perception is None:
        return None
    item: dict[str, Any] = {
        "id": item_id,
        "question": record.problem,
        "answer": record.ground_truth or "",
        "observation": segments.perception.of(response),
        "data_type": record.data_type,
    }
    if record.options:
        item["options"] = list(record.options)
    if record.evidence:
        item["evidence"] = list(record.evidence)
    if record.observation:
        item["reference_observation"] = record.observation
    return item
