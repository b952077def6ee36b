"""Per-item scoring (MRA against hand-computed values, open answers) and benchmark aggregation."""

from __future__ import annotations

import pytest

from videop2r.eval import EvalItem, get_benchmark, score_item
from videop2r.eval.benchmarks.vsibench import official_overall
from videop2r.eval.scoring import open_match, vsi_number


def item(
    answer: str, metric: str = "accuracy", problem_type: str = "multiple choice", options=()
) -> EvalItem:
    return EvalItem(
        benchmark="t",
        id="1",
        question="q?",
        options=tuple(options),
        answer=answer,
        problem_type=problem_type,
        metric=metric,
        media={"keys": ("v.mp4",)},
    )


def respond(answer: str | None, think: str = "I compare the options.") -> str:
    tail = f"<answer>{answer}</answer>" if answer is not None else ""
    return f"<observation>Based on the question, I need to notice the room.</observation><think>{think}</think>{tail}"


# Hand-computed: relative error e counts at threshold θ iff e <= 1 - θ, θ in 0.50, 0.55, ..., 0.95 (10 values).
@pytest.mark.parametrize(
    "truth,prediction,expected",
    [
        ("10", "10", 1.0),  # e = 0
        ("10", "10.4", 1.0),  # e = 0.04 <= 0.05: all ten thresholds
        ("10", "8.1", 0.7),  # e = 0.19: θ = 0.50 ... 0.80, seven thresholds
        ("10", "12.9 meters", 0.5),  # first word "12.9", e = 0.29: θ = 0.50 ... 0.70, five
        ("20.5", "18.", 0.8),  # "18", e = 2.5 / 20.5 = 0.122: θ = 0.50 ... 0.85, eight
        ("10", "4", 0.0),  # e = 0.6 > 0.5
        ("150", "about 150", 0.0),  # lmms-eval reads the first word: "about" is no number
    ],
)
def test_mra_matches_hand_computed_values(truth, prediction, expected):
    scored = score_item(item(truth, "mra", "numerical"), respond(prediction))
    assert scored.score == pytest.approx(expected)
    assert scored.prediction == prediction


@pytest.mark.parametrize("prediction", ["8", "13", "9.5", "11", "0", "7.25"])
def test_mra_equals_the_lmms_eval_formula_on_threshold_boundaries(prediction):
    """e = 0.2 sits on the θ = 0.8 boundary: float rounding decides, and must decide as lmms-eval's does."""
    import numpy as np

    target = 10.0
    official = float((abs(float(prediction) - target) / target <= 1 - np.linspace(0.5, 0.95, 10)).mean())
    assert score_item(item("10", "mra", "numerical"), respond(prediction)).score == pytest.approx(official)


def test_no_answer_block_scores_zero():
    scored = score_item(item("10", "mra", "numerical"), "<observation>a room</observation><think>hmm</think>")
    assert scored.prediction is None and scored.score == 0.0 and not scored.format_ok


def test_multiple_choice_format_mismatch_and_observation():
    options = ("A. left", "B. right", "C. up")
    good = score_item(item("B", options=options), respond("B", "The lamp is on the right, so option B."))
    assert (good.score, good.format_ok, good.mismatch) == (1.0, True, False)
    assert good.observation == "Based on the question, I need to notice the room."
    contradicted = score_item(
        item("B", options=options), respond("C", "The lamp is on the right, so option B.")
    )
    assert (contradicted.score, contradicted.mismatch) == (0.0, True)
    by_text = score_item(item("B", options=options), respond("right"))
    assert by_text.score == 1.0  # the option's text names its letter (method §2 via the rewards library)


@pytest.mark.parametrize(
    "prediction,truth,expected",
    [
        ("The value is 42.0", "42", 1.0),
        ("about 41", "42", 0.0),
        ("1,250", "1250", 1.0),
        ("The Dolly Zoom technique.", "dolly zoom", 1.0),
        ("a zoom", "dolly zoom", 0.0),
        ("option a", "a", 1.0),
        ("banana", "a", 0.0),
    ],
)
def test_open_match_follows_the_mmmu_rule(prediction, truth, expected):
    assert open_match(prediction, truth) == expected


def test_vsi_number_reads_the_first_word():
    assert vsi_number("3.5 meters.") == "3.5"
    assert vsi_number("7.") == "7"


def test_vsibench_score_is_the_mean_of_mra_and_accuracy():
    def line(qtype: str, metric: str, score: float) -> dict:
        return {"metric": metric, "score": score, "groups": {"question_type": qtype}}

    results = [
        line("route_planning", "accuracy", 1.0),
        line("obj_appearance_order", "accuracy", 0.0),
        line("object_rel_direction_easy", "accuracy", 1.0),
        line("object_rel_direction_hard", "accuracy", 0.0),
        line("object_counting", "mra", 1.0),
        line("room_size_estimation", "mra", 0.7),
    ]
    score = get_benchmark("vsibench").aggregate(results)
    # MRA mean (1.0 + 0.7) / 2 = 0.85; accuracy mean 2 / 4 = 0.5; VSI-Bench = (0.85 + 0.5) / 2
    assert score.score == pytest.approx(0.675)
    assert score.extra["mra"] == pytest.approx(0.85) and score.extra["accuracy"] == pytest.approx(0.5)
    # lmms-eval: per type, rel-direction types merged: mean(1, 0, (1 + 0) / 2, 1, 0.7) = 0.64
    assert score.extra["official_overall"] == pytest.approx(0.64)
    assert official_overall(results) == pytest.approx(0.64)
    assert score.breakdown["question_type"]["room_size_estimation"] == pytest.approx(0.7)


def test_default_aggregation_is_the_item_mean_with_breakdowns():
    results = [
        {"score": 1.0, "groups": {"task": "a"}},
        {"score": 0.0, "groups": {"task": "a"}},
        {"score": 1.0, "groups": {"task": "b"}},
        {"score": 0.0, "groups": {}},
    ]
    score = get_benchmark("mvbench").aggregate(results)
    assert score.score == pytest.approx(0.5)
    assert score.breakdown == {"task": {"a": 0.5, "b": 1.0}}
