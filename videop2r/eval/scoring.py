"""Score one response to one benchmark item, and read the process diagnostics off it.

The answer is the stripped text of the first ``<answer>`` block (method §2; `segment_response`);
a response without one scores 0 and is counted as ``no_answer``. The metric is the item's:

- ``accuracy`` — Acc_t of method §2 by problem type (option letter for multiple choice);
- ``mra`` — VSI-Bench's mean relative accuracy; the number is read as lmms-eval reads it (the
  first word of the answer, a trailing period dropped);
- ``open_match`` — the MMMU/VideoMMMU open-answer rule: numbers equal after rounding to 2
  decimals, or the lower-cased ground truth found inside the answer.

Diagnostics: the template check of both processes (method §4 format), the think/answer mismatch
(`videop2r.rewards.consistency`, the trainer's definition) and the observation text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from videop2r.eval.items import EvalItem
from videop2r.rewards import answer_accuracy, mean_relative_accuracy, segment_response
from videop2r.rewards.accuracy import parse_number
from videop2r.rewards.segments import OBSERVATION_CLOSE, OBSERVATION_OPEN
from videop2r.rewards.consistency import think_answer_mismatch

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


@dataclass(frozen=True)
class ItemScore:
    score: float
    prediction: str | None  # the <answer> text; None when the response has no answer block
    format_ok: bool
    mismatch: bool | None  # think contradicts answer; None when not decidable
    observation: str | None  # the observation text without its tags


def vsi_number(prediction: str) -> str:
    """lmms-eval's VSI-Bench reading of a numerical answer: its first word, a trailing '.' removed."""
    words = prediction.strip().split(" ")
    return words[0].rstrip(".").strip() if words else ""


def open_match(prediction: str, truth: str) -> float:
    """1 if an open answer matches the ground truth by the MMMU rule, else 0."""
    truth_number = parse_number(truth)
    text = " " + prediction.strip().strip(".").lower() + " "
    if truth_number is not None:
        numbers = [parse_number(found) for found in _NUMBER.findall(prediction)]
        return float(any(n is not None and round(n, 2) == round(truth_number, 2) for n in numbers))
    gold = truth.strip().lower()
    if not gold:
        return 0.0
    if len(gold) == 1:  # a one-letter answer must stand alone, not inside a word
        return float(f" {gold} " in text or f" {gold}." in text or f" {gold}," in text)
    return float(gold in text)


def answer_score(item: EvalItem, prediction: str | None) -> float:
    """The item's metric on a parsed answer (None = no answer = 0)."""
    if prediction is None:
        return 0.0
    if item.metric == "mra":
        return mean_relative_accuracy(vsi_number(prediction), item.answer)
    if item.metric == "open_match":
        return open_match(prediction, item.answer)
    return answer_accuracy(item.problem_type, prediction, item.answer, list(item.options))


def observation_text(response: str) -> str | None:
    """The observation of a response without its tags, or None when it has none (or it is empty)."""
    segments = segment_response(response)
    if segments.perception is None:
        return None
    text = segments.perception.of(response).strip()
    text = text.removeprefix(OBSERVATION_OPEN).removesuffix(OBSERVATION_CLOSE).strip()
    return text or None


def score_item(item: EvalItem, response: str) -> ItemScore:
    segments = segment_response(response)
    return ItemScore(
        score=answer_score(item, segments.answer),
        prediction=segments.answer,
        format_ok=segments.perception_well_formed and segments.reasoning_well_formed,
        mismatch=think_answer_mismatch(response, item.problem_type),
        observation=observation_text(response),
    )
