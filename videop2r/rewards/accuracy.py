"""Acc_t, the answer accuracy per problem type (method §2), and MRA for VSI-Bench numerical answers.

Every function takes the predicted answer (the stripped text inside ``<answer>``) and the
ground truth, never raises on any string, and returns a float in [0, 1].
"""

from __future__ import annotations

import functools
import math
import re
from enum import Enum

import numpy as np

from videop2r.rewards.segments import ANSWER_CLOSE, ANSWER_OPEN
from videop2r.rewards.text_metrics import rouge_f_measures, word_accuracy


class ProblemType(str, Enum):
    """The five `problem_type`s of the Video-R1 / VideoP2R data."""

    MULTIPLE_CHOICE = "multiple choice"
    NUMERICAL = "numerical"
    OCR = "OCR"
    FREE_FORM = "free-form"
    REGRESSION = "regression"


class UnknownProblemType(ValueError):
    """A `problem_type` that is none of the five."""


_PROBLEM_TYPE_KEYS = {
    "multiplechoice": ProblemType.MULTIPLE_CHOICE,
    "numerical": ProblemType.NUMERICAL,
    "numeric": ProblemType.NUMERICAL,
    "ocr": ProblemType.OCR,
    "freeform": ProblemType.FREE_FORM,
    "regression": ProblemType.REGRESSION,
}
_SEPARATORS = re.compile(r"[\s_\-]+")


def parse_problem_type(name: object) -> ProblemType:
    """Canonical problem type; case, spaces, ``-`` and ``_`` are ignored ("Multiple_Choice" works)."""
    if isinstance(name, ProblemType):
        return name
    key = _SEPARATORS.sub("", name.lower()) if isinstance(name, str) else None
    found = _PROBLEM_TYPE_KEYS.get(key) if key is not None else None
    if found is None:
        known = ", ".join(repr(t.value) for t in ProblemType)
        raise UnknownProblemType(f"unknown problem_type {name!r} (expected one of {known})")
    return found


def ground_truth_answer(solution: str) -> str:
    """The answer inside a solution's ``<answer>…</answer>`` (Video-R1 layout), else the stripped text."""
    open_at = solution.find(ANSWER_OPEN)
    if open_at < 0:
        return solution.strip()
    body_at = open_at + len(ANSWER_OPEN)
    close_at = solution.find(ANSWER_CLOSE, body_at)
    return (solution[body_at:close_at] if close_at >= 0 else solution[body_at:]).strip()


# ---- multiple choice ------------------------------------------------------------------------

# "A", "A.", "(A)", "[B]", "C) text", "D: text", "Option E" — one capital letter standing alone.
_LETTER_RE = re.compile(r"^(?:option\s*)?[(\[]?\s*([A-Z])\s*[)\]]?(?=$|[\s.:,)\]])", re.IGNORECASE | re.ASCII)
_OPTION_RE = re.compile(r"^\s*[(\[]?([A-Z])[)\].:]\s*(.*)$", re.DOTALL)


def _normalise_text(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def _option_letters(options: list[str] | None) -> dict[str, str]:
    """Normalised option text (and full option line) → letter; unlabeled options are lettered by position."""
    if not options:
        return {}
    try:
        return _option_table(tuple(options))
    except TypeError:  # unhashable entries: nothing to look up in them anyway
        return _option_table(tuple(option for option in options if isinstance(option, str)))


@functools.lru_cache(maxsize=4096)  # the same options are scored G times per prompt
def _option_table(options: tuple[str, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for position, option in enumerate(options):
        if not isinstance(option, str):
            continue
        labeled = _OPTION_RE.match(option)
        if labeled:
            letter, body = labeled.group(1), labeled.group(2)
        elif position < 26:
            letter, body = chr(ord("A") + position), option
        else:
            continue
        for key in (_normalise_text(body), _normalise_text(option)):
            if key:
                table.setdefault(key, letter)
    return table


def option_letter(answer: str, options: list[str] | None = None) -> str | None:
    """The option letter an answer names: its option text if it is one, else a leading capital letter."""
    text = answer.strip()
    by_text = _option_letters(options).get(_normalise_text(text))
    if by_text is not None:
        return by_text
    match = _LETTER_RE.match(text)
    if match and match.group(1).isupper():
        return match.group(1)
    return None


_STANDALONE_LETTER_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9])", re.ASCII)
_DEFAULT_LETTERS = frozenset("ABCDEFGH")  # without options: the usual MC range ("I" is a pronoun)


def named_options(answer: str, options: list[str] | None = None) -> set[str]:
    """Every option an answer names, by standalone letter or by option text ("B or C" → {B, C}).

    An answer that is exactly one option's text (or its full "B. blue" line) names that option
    only. Longer option texts are matched first and blanked, so "dark red" is not also "red".
    """
    text = answer.strip()
    table = _option_letters(options)
    exact = table.get(_normalise_text(text))
    if exact is not None:
        return {exact}
    named: set[str] = set()
    rest = " " + _normalise_text(re.sub(r"[,;/&|+]", " ", text)) + " "
    for body in sorted(table, key=len, reverse=True):
        if len(body) < 2 or re.fullmatch(r"[(\[]?[a-z][)\].:]?", body):
            continue
        pattern = rf"(?<![a-z0-9]){re.escape(body)}(?![a-z0-9])"
        if re.search(pattern, rest):
            named.add(table[body])
            rest = re.sub(pattern, " ", rest)
    letters = set(table.values()) or _DEFAULT_LETTERS
    named.update(m for m in _STANDALONE_LETTER_RE.findall(text) if m in letters)
    return named


def multiple_choice_accuracy(prediction: str, truth: str, options: list[str] | None = None) -> float:
    """1 if the predicted option letter equals the ground truth's, else 0.

    An answer that names more than one option ("B or C", "B and D", "blue/green") scores 0
    even when its first letter is right: listing options must not buy credit.
    """
    truth_letter = option_letter(truth, options)
    if truth_letter is None:  # a truth that names no option: compare the texts
        return float(bool(truth.strip()) and _normalise_text(prediction) == _normalise_text(truth))
    if len(named_options(prediction, options)) > 1:
        return 0.0
    return float(option_letter(prediction, options) == truth_letter)


# ---- numbers ------------------------------------------------------------------------------


def parse_number(text: str) -> float | None:
    """A finite float from the whole (stripped) text, commas as thousands separators; else None."""
    try:
        value = float(text.strip().replace(",", ""))
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def numerical_accuracy(prediction: str, truth: str) -> float:
    """1 if equal after rounding to 2 decimals; 0 if only one has a decimal point (Video-R1) or no parse."""
    if ("." in prediction) != ("." in truth):
        return 0.0
    predicted, expected = parse_number(prediction), parse_number(truth)
    if predicted is None or expected is None:
        return 0.0
    return float(round(predicted, 2) == round(expected, 2))


def _relative_error(predicted: float, expected: float) -> float:
    if expected == 0:  # **ours**: relative error is undefined; exact zero is right, anything else wrong
        return 0.0 if predicted == 0 else math.inf
    return abs(predicted - expected) / abs(expected)


def regression_accuracy(prediction: str, truth: str) -> float:
    """1 − min(1, |pred − truth| / |truth|); 0 when either does not parse."""
    predicted, expected = parse_number(prediction), parse_number(truth)
    if predicted is None or expected is None:
        return 0.0
    return 1.0 - min(1.0, _relative_error(predicted, expected))


# VSI-Bench: thresholds 0.50, 0.55, …, 0.95 (as its np.linspace(.5, .95, 10)).
MRA_THRESHOLDS = tuple(float(x) for x in np.linspace(0.5, 0.95, 10))


def mean_relative_accuracy(prediction: str, truth: str) -> float:
    """Mean over θ in MRA_THRESHOLDS of 1[|pred − truth| / |truth| ≤ 1 − θ]; 0 when either does not parse."""
    predicted, expected = parse_number(prediction), parse_number(truth)
    if predicted is None or expected is None:
        return 0.0
    error = _relative_error(predicted, expected)
    return sum(error <= 1 - threshold for threshold in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


# ---- text ---------------------------------------------------------------------------------


def ocr_accuracy(prediction: str, truth: str, max_cells: int | None = None) -> float:
    """max(0, 1 − WER(truth, prediction)); `max_cells`: compute budget (text_metrics.OverBudget)."""
    return word_accuracy(truth, prediction, max_cells)


def free_form_accuracy(prediction: str, truth: str, max_cells: int | None = None) -> float:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score, Porter stemming)."""
    rouge1, rouge2, rouge_l = rouge_f_measures(truth, prediction, max_cells)
    return max(0.0, min(1.0, (rouge1 + rouge2 + rouge_l) / 3))


def answer_accuracy(
    problem_type: ProblemType | str, prediction: str | None, truth: str, options: list[str] | None = None,
    max_cells: int | None = None,
) -> float:
    """Acc_t of a predicted answer (None = no answer block = 0). Raises only UnknownProblemType, and
    OverBudget when an OCR / free-form comparison exceeds `max_cells` (truth x prediction words)."""
    kind = parse_problem_type(problem_type)
    if prediction is None or not isinstance(prediction, str) or not isinstance(truth, str):
        return 0.0
    if kind is ProblemType.MULTIPLE_CHOICE:
        return multiple_choice_accuracy(prediction, truth, options)
    if kind is ProblemType.NUMERICAL:
        return numerical_accuracy(prediction, truth)
    if kind is ProblemType.OCR:
        return ocr_accuracy(prediction, truth, max_cells)
    if kind is ProblemType.FREE_FORM:
        return free_form_accuracy(prediction, truth, max_cells)
    return regression_accuracy(prediction, truth)
