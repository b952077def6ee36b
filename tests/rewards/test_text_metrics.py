"""The fast ROUGE equals the rouge-score package exactly; the fast WER equals a plain DP WER."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from videop2r.rewards import free_form_accuracy, rouge_f_measures, word_error_rate

REFERENCE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)

# Words that stem (running/runs, generously), case, digits, punctuation, accents, CJK, emoji.
WORDS = st.sampled_from(
    "the a red ball balls rolling rolled rolls running runs run generously generous Generation "
    "caresses ponies ties sized relational conditional 3.14 1,000 42 don't it's x-ray e-mail "
    "Héllo wörld 日本 😀 — ... ( ) ! ? , . ; über naïve İstanbul ß ﬁne".split()
)
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", ", ", "-", ""])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), max_size=40).map(lambda parts: "".join(w + s for w, s in parts))
ANY_TEXT = st.one_of(TEXTS, st.text(max_size=80))


def reference_wer(truth: str, prediction: str) -> float:
    """The straightforward dynamic programme (as in Video-R1)."""
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(truth=ANY_TEXT, prediction=ANY_TEXT)
def test_rouge_equals_rouge_score_exactly(truth: str, prediction: str) -> None:
    expected = REFERENCE.score(truth, prediction)
    assert rouge_f_measures(truth, prediction) == (
        expected["rouge1"].fmeasure,
        expected["rouge2"].fmeasure,
        expected["rougeL"].fmeasure,
    )
    mean = (expected["rouge1"].fmeasure + expected["rouge2"].fmeasure + expected["rougeL"].fmeasure) / 3
    assert free_form_accuracy(prediction, truth) == max(0.0, min(1.0, mean))


def test_rouge_on_long_texts_uses_the_full_lcs() -> None:
    truth = " ".join(f"w{i % 97} running" for i in range(400))
    prediction = " ".join(f"w{(i * 7) % 97} runs" for i in range(350))
    expected = REFERENCE.score(truth, prediction)
    assert rouge_f_measures(truth, prediction) == tuple(expected[k].fmeasure for k in ("rouge1", "rouge2", "rougeL"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(truth=ANY_TEXT, prediction=ANY_TEXT)
def test_wer_equals_plain_dynamic_programme(truth: str, prediction: str) -> None:
    assert word_error_rate(truth, prediction) == pytest.approx(reference_wer(truth, prediction), abs=0, rel=1e-15)
