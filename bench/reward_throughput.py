"""Accuracy-scoring throughput per problem type: ours vs a straightforward per-sample reference.

For N synthetic rollouts per problem type (seeded), both sides do the same work per sample:
extract the answer from the response, then score it against the ground truth.

  ours:       videop2r.rewards (extract_answer + answer_accuracy: cached Porter stems and
              rapidfuzz LCS for ROUGE, rapidfuzz Levenshtein for WER)
  reference:  what a per-sample reward function does (Video-R1 style): a regex for the answer,
              rouge-score's RougeScorer.score per sample (scorer built once, which favours the
              reference), a plain dynamic-programme WER, float() for numbers

Ours is timed cold (empty stem cache, first pass) and warm (best of the repeats); the reference
is the best of the repeats. Values are checked to agree. Goal: >= 5x on free-form and OCR.
The last line is the whole of `score_response` (spans, both format checks, token lengths, all
components), what the reward-accuracy service runs per item.

    .venv/bin/python bench/reward_throughput.py --samples 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from rouge_score import rouge_scorer
from tqdm import tqdm

from videop2r.rewards import ProblemType, answer_accuracy, extract_answer, ground_truth_answer, score_response
from videop2r.rewards.text_metrics import _stem

GOAL = {ProblemType.FREE_FORM: 5.0, ProblemType.OCR: 5.0}

# ---- synthetic rollouts -----------------------------------------------------------------------

_ONSETS = ["b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr", "pl", "gr"]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou"]
_SUFFIXES = ["", "", "", "s", "ed", "ing", "ly", "tion", "ness", "er", "ies", "ful"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    stems = {"".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3))) for _ in range(size)}
    return sorted(stem + rng.choice(_SUFFIXES) for stem in stems)


def _sentence(rng: random.Random, words: list[str], low: int, high: int) -> str:
    # Zipf-like word choice, as in natural text
    return " ".join(words[min(len(words) - 1, int(rng.paretovariate(1.1)) - 1)] for _ in range(rng.randint(low, high)))


def _edit(rng: random.Random, text: str, words: list[str], rate: float) -> str:
    out = []
    for word in text.split():
        roll = rng.random()
        if roll < rate / 3:
            continue  # deletion
        out.append(rng.choice(words) if roll < 2 * rate / 3 else word)  # substitution
        if rng.random() < rate / 3:
            out.append(rng.choice(words))  # insertion
    return " ".join(out)


def _sample(rng: random.Random, kind: ProblemType, words: list[str]) -> dict:
    options = None
    if kind is ProblemType.MULTIPLE_CHOICE:
        options = [f"{letter}. {_sentence(rng, words, 1, 4)}" for letter in "ABCD"]
        truth, answer = rng.choice("ABCD"), rng.choice("ABCD")
    elif kind is ProblemType.NUMERICAL:
        truth = str(rng.randint(0, 60))
        answer = truth if rng.random() < 0.5 else str(rng.randint(0, 60))
    elif kind is ProblemType.REGRESSION:
        truth = f"{rng.uniform(0.5, 90):.2f}"
        answer = f"{float(truth) * rng.uniform(0.6, 1.4):.2f}"
    elif kind is ProblemType.OCR:
        truth = _sentence(rng, words, 4, 40)
        answer = _edit(rng, truth, words, 0.3)
    else:
        truth = _sentence(rng, words, 8, 60)
        answer = _edit(rng, truth, words, 0.5) if rng.random() < 0.7 else _sentence(rng, words, 8, 60)
    response = (
        f"<observation> {_sentence(rng, words, 40, 120)} </observation>\n"
        f"<think> {_sentence(rng, words, 60, 200)} </think>\n<answer> {answer} </answer>"
    )
    return {"id": 0, "problem_type": kind.value, "response": response, "solution": f"<answer>{truth}</answer>",
            "options": options}


# ---- the two scorers -------------------------------------------------------------------------

_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def _reference_wer(truth: str, prediction: str) -> float:
    ref, hyp = truth.split(), prediction.split()
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) + 1):
        table[i][0] = i
    for j in range(len(hyp) + 1):
        table[0][j] = j
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost = 0 if ref[i - 1] == hyp[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
    return table[len(ref)][len(hyp)] / max(1, len(ref))


def _reference_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def reference_accuracy(item: dict) -> float:
    match = _ANSWER_RE.search(item["response"])
    prediction = match.group(1).strip() if match else ""
    truth = _ANSWER_RE.search(item["solution"]).group(1).strip()
    kind = item["problem_type"]
    if kind == "multiple choice":
        return float(prediction == truth)
    if kind == "numerical":
        if ("." in prediction) != ("." in truth):
            return 0.0
        p, t = _reference_number(prediction), _reference_number(truth)
        return float(p is not None and t is not None and round(p, 2) == round(t, 2))
    if kind == "OCR":
        return max(0.0, 1.0 - _reference_wer(truth, prediction))
    if kind == "free-form":
        scores = _SCORER.score(truth, prediction)
        return max(0.0, min(1.0, (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3))
    p, t = _reference_number(prediction), _reference_number(truth)
    if p is None or t is None:
        return 0.0
    return 1.0 - min(1.0, abs(p - t) / abs(t))


def our_accuracy(item: dict) -> float:
    answer = extract_answer(item["response"])
    return answer_accuracy(item["problem_type"], answer, ground_truth_answer(item["solution"]), item["options"])


# ---- timing ----------------------------------------------------------------------------------


def _timed(scorer: Callable[[dict], float], items: list[dict]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    values = [scorer(item) for item in items]
    return time.perf_counter() - started, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="rollouts per problem type")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    words = _vocabulary(rng, 3000)
    our_accuracy(_sample(rng, ProblemType.FREE_FORM, words))  # import nltk outside the timings
    reference_accuracy(_sample(rng, ProblemType.FREE_FORM, words))
    _stem.cache_clear()

    header = f"{'problem type':<16}{'reference/s':>12}{'ours cold/s':>13}{'ours warm/s':>13}{'cold x':>8}{'warm x':>8}"
    rows = []
    for kind in tqdm(list(ProblemType), desc="problem types", leave=False):
        items = [_sample(rng, kind, words) for _ in range(args.samples)]
        cold, ours = _timed(our_accuracy, items)
        warm = min(_timed(our_accuracy, items)[0] for _ in range(args.repeats))
        reference, theirs = None, None
        for _ in range(args.repeats):
            elapsed, theirs = _timed(reference_accuracy, items)
            reference = elapsed if reference is None else min(reference, elapsed)
        disagreement = max(abs(a - b) for a, b in zip(ours, theirs))
        n = len(items)
        rows.append((kind, n / reference, n / cold, n / warm, reference / cold, reference / warm, disagreement))

    end_to_end_items = [_sample(rng, kind, words) for kind in ProblemType for _ in range(args.samples // 5)]
    end_to_end, _ = _timed(score_response, end_to_end_items)

    print(f"{args.samples} synthetic rollouts per problem type, seed {args.seed}, best of {args.repeats}")
    print(header)
    for kind, ref_rate, cold_rate, warm_rate, cold_x, warm_x, disagreement in rows:
        goal = GOAL.get(kind)
        verdict = "" if goal is None else f"  goal >= {goal:.0f}x: {'met' if cold_x >= goal else 'NOT met'}"
        print(f"{kind.value:<16}{ref_rate:>12.0f}{cold_rate:>13.0f}{warm_rate:>13.0f}{cold_x:>8.1f}{warm_x:>8.1f}"
              f"   max |ours - ref| {disagreement:.1e}{verdict}")
    print(f"score_response end to end (segments, whitespace token lengths, all components, mixed types): "
          f"{len(end_to_end_items) / end_to_end:.0f} samples/s")


if __name__ == "__main__":
    main()
