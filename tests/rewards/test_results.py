"""Typed reward results: the services' JSON lines are their `to_json()`, byte for byte."""

from __future__ import annotations

import json

import pytest

from videop2r.rewards import (
    ProcessReward,
    RewardParts,
    RewardShape,
    ScoringSettings,
    perception_judged,
    reward_parts,
    score_response,
    with_perception_verdict,
)


def _item(verdict: bool | None) -> dict:
    # 3 whitespace tokens of perception, 8 of reasoning (tags included)
    text = "<observation> green </observation> <think> it is green </think> <answer> B </answer>"
    return {"id": 7, "problem_type": "multiple choice", "response": text, "solution": "<answer>B</answer>",
            "perception_verdict": verdict}


SETTINGS = ScoringSettings(shape=RewardShape(perception_length=(1, 5), reasoning_length=(1, 5)))


def test_the_json_line_keeps_its_keys_order_and_values() -> None:
    judged = json.dumps(score_response(_item(True), SETTINGS))
    assert judged == (
        '{"id": 7, "perception": {"accuracy": 1.0, "format": 1, "length": 3, "length_reward": 0.2, "total": 2.2}, '
        '"reasoning": {"accuracy": 1.0, "format": 1, "length": 8, "length_reward": 0.0, "total": 2.0}}'
    )
    unjudged = json.dumps(score_response(_item(None), SETTINGS))
    assert unjudged.startswith('{"id": 7, "perception": {"format": 1, "length": 3}, "reasoning": {"accuracy"')


@pytest.mark.parametrize("verdict", [True, False, None])
def test_typed_parts_round_trip_through_the_wire_line(verdict) -> None:
    parts = reward_parts(_item(verdict), SETTINGS)
    line = parts.to_json()
    assert line == score_response(_item(verdict), SETTINGS)
    assert RewardParts.from_json(json.loads(json.dumps(line))) == parts
    assert (parts.perception.accuracy is None) == (verdict is None)
    assert parts.reasoning == ProcessReward(format=1, length=8, accuracy=1.0, length_reward=0.0, total=2.0)


@pytest.mark.parametrize("verdict", [True, False])
def test_judging_the_typed_parts_matches_filling_the_line(verdict) -> None:
    unjudged = reward_parts(_item(None), SETTINGS)
    judged = perception_judged(unjudged, verdict, SETTINGS.shape)
    assert judged.to_json() == with_perception_verdict(unjudged.to_json(), verdict, SETTINGS.shape)
    assert judged == reward_parts(_item(verdict), SETTINGS)
    assert judged.perception.total == (2.2 if verdict else 1.0) and judged.reasoning == unjudged.reasoning


def test_an_error_line_is_not_reward_parts() -> None:
    with pytest.raises(KeyError):
        RewardParts.from_json({"id": 7, "error": "over the scoring budget"})
