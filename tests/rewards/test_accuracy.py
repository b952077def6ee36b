"""Acc_t per problem type and MRA against hand-computed values (method §2)."""

from __future__ import annotations

import numpy as np
import pytest

from videop2r.rewards import (
    ProblemType,
    UnknownProblemType,
    answer_accuracy,
    free_form_accuracy,
    ground_truth_answer,
    mean_relative_accuracy,
    multiple_choice_accuracy,
    numerical_accuracy,
    ocr_accuracy,
    parse_problem_type,
    regression_accuracy,
)
from videop2r.rewards.accuracy import named_options

OPTIONS = ["A. red", "B. blue", "C. green"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("multiple choice", ProblemType.MULTIPLE_CHOICE),
        ("Multiple_Choice", ProblemType.MULTIPLE_CHOICE),
        ("multiple-choice", ProblemType.MULTIPLE_CHOICE),
        (" numerical ", ProblemType.NUMERICAL),
        ("OCR", ProblemType.OCR),
        ("ocr", ProblemType.OCR),
        ("free-form", ProblemType.FREE_FORM),
        ("Free Form", ProblemType.FREE_FORM),
        ("REGRESSION", ProblemType.REGRESSION),
    ],
)
def test_problem_type_variants(name: str, expected: ProblemType) -> None:
    assert parse_problem_type(name) is expected


@pytest.mark.parametrize("name", ["", "yes/no", "choice", None, 3])
def test_unknown_problem_type_is_a_clear_error(name: object) -> None:
    with pytest.raises(UnknownProblemType, match="unknown problem_type"):
        parse_problem_type(name)


@pytest.mark.parametrize(
    ("prediction", "truth", "options", "expected"),
    [
        ("B", "B", None, 1.0),
        ("(B)", "B", None, 1.0),
        ("B. blue", "B", OPTIONS, 1.0),
        ("B: blue", "B", None, 1.0),
        ("Option B", "B", None, 1.0),
        ("blue", "B", OPTIONS, 1.0),  # the option text names the letter
        ("Blue.", "B", OPTIONS, 1.0),
        ("b", "B", None, 0.0),  # lower-case letters are words, not option letters
        ("C", "B", OPTIONS, 0.0),
        ("", "B", OPTIONS, 0.0),
        ("Because", "B", None, 0.0),
        ("B", "blue", OPTIONS, 1.0),  # a truth given as option text
        ("yes", "yes", None, 1.0),  # no option letters anywhere: the texts are compared
        ("no", "yes", None, 0.0),
    ],
)
def test_multiple_choice(prediction: str, truth: str, options: list[str] | None, expected: float) -> None:
    assert multiple_choice_accuracy(prediction, truth, options) == expected


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        ("3", "3", 1.0),
        ("3.0", "3.00", 1.0),
        ("3", "3.0", 0.0),  # only one has a decimal point (Video-R1)
        ("2.004", "2.0", 1.0),  # equal at 2 decimals
        ("2.016", "2.01", 0.0),
        ("1,000", "1000", 1.0),
        (" 42 ", "42", 1.0),
        ("4 2", "42", 0.0),
        ("forty-two", "42", 0.0),
        ("inf", "inf", 0.0),
        ("nan", "nan", 0.0),
        ("", "1", 0.0),
    ],
)
def test_numerical(prediction: str, truth: str, expected: float) -> None:
    assert numerical_accuracy(prediction, truth) == expected


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        ("the quick brown fox", "the quick brown fox", 1.0),
        ("the quick brown dog jumps", "the quick brown fox", 0.5),  # 1 substitution + 1 insertion over 4 words
        ("quick brown fox", "the quick brown fox", 0.75),  # 1 deletion
        ("", "the quick brown fox", 0.0),
        ("a b c d e f g h", "x", 0.0),  # WER above 1 is clipped at 0
        ("", "", 1.0),
        ("word", "", 0.0),
    ],
)
def test_ocr(prediction: str, truth: str, expected: float) -> None:
    assert ocr_accuracy(prediction, truth) == pytest.approx(expected, abs=1e-12)


def test_free_form_hand_computed() -> None:
    # truth tokens: a red ball roll(ed); prediction: the red ball roll(s)
    # ROUGE-1 3/4, ROUGE-2 2/3, ROUGE-L (LCS 3) 3/4 → mean 0.7222…
    assert free_form_accuracy("the red ball rolls", "a red ball rolled") == pytest.approx((0.75 + 2 / 3 + 0.75) / 3)
    assert free_form_accuracy("", "a red ball") == 0.0
    assert free_form_accuracy("A red ball.", "a red ball") == 1.0


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        ("9", "10", 0.9),
        ("10", "10", 1.0),
        ("30", "10", 0.0),
        ("-10", "10", 0.0),
        ("-3", "-4", 0.75),
        ("0", "0", 1.0),
        ("1", "0", 0.0),  # ours: relative error against a zero truth is 0 only for an exact 0
        ("x", "10", 0.0),
        ("1e308", "-1e308", 0.0),
    ],
)
def test_regression(prediction: str, truth: str, expected: float) -> None:
    assert regression_accuracy(prediction, truth) == pytest.approx(expected)


def vsi_bench_mra(prediction: float, truth: float) -> float:
    """VSI-Bench's formula, written out with numpy as its evaluation code does."""
    thresholds = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))
    return float((abs(prediction - truth) / truth <= 1 - thresholds).mean())


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [("10", "10", 1.0), ("10.4", "10", 1.0), ("13.2", "10", 0.4), ("6.8", "10", 0.4), ("16", "10", 0.0)],
)
def test_mean_relative_accuracy(prediction: str, truth: str, expected: float) -> None:
    assert mean_relative_accuracy(prediction, truth) == pytest.approx(expected)
    assert mean_relative_accuracy(prediction, truth) == pytest.approx(vsi_bench_mra(float(prediction), float(truth)))


def test_mean_relative_accuracy_matches_vsi_bench_on_a_grid() -> None:
    for truth in (0.5, 3.0, 7.25, 120.0):
        for prediction in np.linspace(0, 2.5 * truth, 301):
            ours = mean_relative_accuracy(repr(float(prediction)), repr(truth))
            assert ours == pytest.approx(vsi_bench_mra(float(prediction), truth)), (prediction, truth)


def test_ground_truth_answer_reads_the_solution_layout() -> None:
    assert ground_truth_answer("<answer> B </answer>") == "B"
    assert ground_truth_answer("  12.5 ") == "12.5"
    assert ground_truth_answer("<answer>open") == "open"


def test_dispatch_by_problem_type_and_missing_answer() -> None:
    assert answer_accuracy("multiple choice", "B", "B", OPTIONS) == 1.0
    assert answer_accuracy("numerical", "2", "2") == 1.0
    assert answer_accuracy("OCR", "a b", "a b") == 1.0
    assert answer_accuracy("free-form", "a red ball", "a red ball") == 1.0
    assert answer_accuracy("regression", "9", "10") == pytest.approx(0.9)
    assert answer_accuracy("regression", None, "10") == 0.0  # no <answer> block
    with pytest.raises(UnknownProblemType):
        answer_accuracy("essay", "a", "a")


@pytest.mark.parametrize(
    ("prediction", "options"),
    [
        ("B or C", None),
        ("B and D", None),
        ("B, C", OPTIONS),
        ("B/C", None),
        ("(B) or (C)", None),
        ("blue or green", OPTIONS),
        ("A. red or B. blue", OPTIONS),
        ("B. blue, C. green", OPTIONS),
    ],
)
def test_an_answer_naming_several_options_scores_zero(prediction: str, options: list[str] | None) -> None:
    """A hedged answer gets no credit even when its first letter is the right one (the reported hack)."""
    assert multiple_choice_accuracy(prediction, "B", options) == 0.0
    assert answer_accuracy("multiple choice", prediction, "B", options) == 0.0


@pytest.mark.parametrize(
    ("prediction", "options", "named"),
    [
        ("B", None, {"B"}),
        ("B. blue", OPTIONS, {"B"}),
        ("B: blue", None, {"B"}),
        ("blue", OPTIONS, {"B"}),
        ("Option B", None, {"B"}),
        ("dark red", ["A. red", "B. dark red"], {"B"}),  # the longer option text wins, not both
        ("I", None, set()),  # "I" is a pronoun unless options run that far
    ],
)
def test_a_single_option_stays_single(prediction: str, options: list[str] | None, named: set[str]) -> None:
    assert named_options(prediction, options) == named
