"""score_response: per-process components, the length reward, ablations, settings from the config."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from videop2r.config import load_config
from videop2r.rewards import (
    RewardShape,
    ScoreRequest,
    ScoringSettings,
    UnknownProblemType,
    combine_process_rewards,
    score_response,
    with_perception_verdict,
)


def response(perception_tokens: int, reasoning_tokens: int, answer: str = "B") -> str:
    """A well-formed response with exact whitespace-token counts per segment (tags included)."""
    observation = "<observation> " + "seen " * (perception_tokens - 2) + "</observation>"
    # reasoning = <think> … </think> <answer> ANSWER </answer> → 5 tags/answer tokens + body
    think = "<think> " + "so " * (reasoning_tokens - 5) + "</think>"
    return f"{observation}\n{think}\n<answer> {answer} </answer>"


def score(text: str, verdict: bool | None = True, shape: RewardShape | None = None, **fields) -> dict:
    item = {"id": "q1", "problem_type": "multiple choice", "response": text, "solution": "<answer>B</answer>",
            "perception_verdict": verdict, **fields}
    return score_response(item, ScoringSettings(shape=shape or RewardShape()))


def test_in_range_lengths_earn_the_bonus_on_both_processes() -> None:
    result = score(response(200, 400))
    assert result == {
        "id": "q1",
        "perception": {"accuracy": 1.0, "format": 1, "length": 200, "length_reward": 0.2, "total": 2.2},
        "reasoning": {"accuracy": 1.0, "format": 1, "length": 400, "length_reward": 0.2, "total": 2.2},
    }


@pytest.mark.parametrize(
    ("perception", "reasoning", "p_bonus", "r_bonus"),
    [(128, 320, 0.2, 0.2), (320, 512, 0.2, 0.2), (127, 319, 0.0, 0.0), (321, 513, 0.0, 0.0)],
)
def test_length_range_bounds_are_inclusive(perception, reasoning, p_bonus, r_bonus) -> None:
    result = score(response(perception, reasoning))
    assert (result["perception"]["length"], result["reasoning"]["length"]) == (perception, reasoning)
    assert (result["perception"]["length_reward"], result["reasoning"]["length_reward"]) == (p_bonus, r_bonus)


def test_bonus_needs_accuracy_and_format() -> None:
    wrong = score(response(200, 400, answer="C"), verdict=False)
    assert wrong["reasoning"] == {"accuracy": 0.0, "format": 1, "length": 400, "length_reward": 0.0, "total": 1.0}
    assert wrong["perception"]["total"] == 1.0 and wrong["perception"]["length_reward"] == 0.0
    malformed = score(response(200, 400) + " trailing")  # nothing may follow </answer>
    assert malformed["reasoning"]["format"] == 0 and malformed["reasoning"]["length_reward"] == 0.0
    assert malformed["reasoning"]["total"] == 1.0  # accuracy only


def test_without_verdict_perception_has_no_accuracy_or_total() -> None:
    result = score(response(200, 400), verdict=None)
    assert result["perception"] == {"format": 1, "length": 200}
    filled = with_perception_verdict(result, True, RewardShape())
    assert filled["perception"] == {"accuracy": 1.0, "format": 1, "length": 200, "length_reward": 0.2, "total": 2.2}
    assert filled["reasoning"] == result["reasoning"]
    assert combine_process_rewards(filled["perception"], filled["reasoning"], RewardShape()) == (2.2, 2.2)
    with pytest.raises(ValueError, match="perception: missing reward component"):
        combine_process_rewards(result["perception"], result["reasoning"], RewardShape())


@pytest.mark.parametrize(
    ("shape", "totals"),
    [
        (RewardShape(), (2.2, 2.2)),
        (RewardShape(use_perception_reward=False), (1.0, 2.2)),  # no judge term, so no P bonus either
        (RewardShape(use_reasoning_reward=False), (2.2, 1.0)),
        (RewardShape(use_length_reward=False), (2.0, 2.0)),
        (RewardShape(length_bonus=0.5), (2.5, 2.5)),
    ],
)
def test_ablation_switches(shape: RewardShape, totals: tuple[float, float]) -> None:
    result = score(response(200, 400), shape=shape)
    assert (result["perception"]["total"], result["reasoning"]["total"]) == pytest.approx(totals)
    assert result["perception"]["accuracy"] == result["reasoning"]["accuracy"] == 1.0  # still logged
    assert combine_process_rewards(result["perception"], result["reasoning"], shape) == pytest.approx(totals)


def test_settings_from_config_with_overrides(bpe_tokenizer_dir) -> None:
    config = load_config(None, [
        "reward.perception_length=[1, 5]", "reward.length_bonus=0.3", "algorithm.use_reasoning_reward=false",
    ])
    settings = ScoringSettings.from_config(config, tokenizer=str(bpe_tokenizer_dir))
    assert settings.shape == RewardShape(perception_length=(1, 5), length_bonus=0.3, use_reasoning_reward=False)
    result = score_response(
        {"id": 1, "problem_type": "numerical", "response": "<observation>x</observation><think>y</think><answer>7</answer>",
         "answer": "7", "perception_verdict": True},
        settings,
    )
    assert result["perception"]["length"] == 3  # BPE: <observation> x </observation>
    assert result["perception"]["length_reward"] == 0.3
    assert result["reasoning"]["accuracy"] == 1.0 and result["reasoning"]["total"] == 1.0


def test_unknown_problem_type_strict_raises_lenient_scores_zero(caplog) -> None:
    item = {"id": 1, "problem_type": "essay", "response": "<answer>x</answer>", "answer": "x"}
    with pytest.raises(UnknownProblemType):
        score_response(item, strict=True)
    with caplog.at_level(logging.WARNING):
        first = score_response(item)
        score_response(item)
    assert first["reasoning"]["accuracy"] == 0.0
    assert sum("unknown problem_type 'essay'" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_request_validation() -> None:
    request = ScoreRequest.model_validate(
        {"problem_id": 7, "problem_type": "OCR", "response": "r", "solution": "<answer> a b </answer>",
         "answer": "ignored", "problem": "extra fields are fine"}
    )
    assert request.id == 7 and request.ground_truth == "a b"
    assert ScoreRequest.model_validate({"id": "x", "problem_type": "OCR", "response": "", "answer": "z"}).ground_truth == "z"
    for bad in (
        {"problem_type": "OCR", "response": "r", "answer": "a"},  # no id
        {"id": 1, "problem_type": "OCR", "answer": "a"},  # no response
        {"id": 1, "problem_type": "OCR", "response": "r"},  # no ground truth
        {"id": 1, "problem_type": "OCR", "response": 5, "answer": "a"},  # not a string
        {"id": 1, "problem_type": "OCR", "response": "r", "answer": "a", "perception_verdict": "yes"},
    ):
        with pytest.raises(ValidationError):
            ScoreRequest.model_validate(bad)
