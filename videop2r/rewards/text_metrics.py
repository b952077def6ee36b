"""Fast word-level text metrics: ROUGE-1/2/L F-measures and WER.

ROUGE gives exactly the numbers of the `rouge-score` package
(``RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True).score(truth, prediction)``):
same tokenisation (lower-case, non-alphanumerics to spaces, Porter stems of words longer than
three characters, via the same nltk stemmer) and the same arithmetic, in the same order. It is
faster because stems are cached per word and the LCS runs in C++ (rapidfuzz) instead of a
Python dynamic programme. WER is word-level Levenshtein distance (rapidfuzz) over the truth's
word count.

Both quadratic parts (LCS, Levenshtein) take an optional budget, `max_cells` = truth words x
prediction words: over it they raise `OverBudget` instead of running (a service must not let one
item hold a worker unboundedly); `word_accuracy` first tries the exact length bound, which needs
no budget.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter

from rapidfuzz.distance import Levenshtein, LCSseq

# rouge_score.tokenize's patterns.
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")
_STEM_CACHE_SIZE = 1 << 18


@functools.lru_cache(maxsize=1)
def _porter_stemmer():
    # Imported lazily: nltk takes seconds to import, and only free-form scoring needs it.
    from nltk.stem import porter

    return porter.PorterStemmer()


@functools.lru_cache(maxsize=_STEM_CACHE_SIZE)
def _stem(word: str) -> str:
    """rouge-score's treatment of one word: Porter stem if longer than 3 characters; '' if invalid."""
    token = _porter_stemmer().stem(word) if len(word) > 3 else word
    return token if _VALID_TOKEN.match(token) else ""


def _rouge_words(text: str) -> list[str]:
    # After the substitution only [a-z0-9] and spaces are left, so str.split equals its \s+ split.
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def _stemmed(words: list[str]) -> list[str]:
    return [token for token in map(_stem, words) if token]


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's DefaultTokenizer(use_stemmer=True).tokenize, with cached stems."""
    return _stemmed(_rouge_words(text))


class OverBudget(ValueError):
    """A comparison whose quadratic part (words x words) exceeds the scoring budget."""


def _check_budget(truth_words: int, prediction_words: int, max_cells: int | None) -> None:
    if max_cells is not None and truth_words * prediction_words > max_cells:
        raise OverBudget(f"{truth_words} x {prediction_words} words exceeds the scoring budget of "
                         f"{max_cells} cells")


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngram_fmeasure(truth: list[str], prediction: list[str], n: int) -> float:
    if n == 1:
        truth_grams, prediction_grams = Counter(truth), Counter(prediction)
    else:
        truth_grams = Counter(zip(*(truth[i:] for i in range(n))))
        prediction_grams = Counter(zip(*(prediction[i:] for i in range(n))))
    overlap = sum((truth_grams & prediction_grams).values())
    precision = overlap / max(sum(prediction_grams.values()), 1)
    recall = overlap / max(sum(truth_grams.values()), 1)
    return _fmeasure(precision, recall)


def _as_ids(words: list[str], vocabulary: dict[str, int]) -> list[int]:
    # Integer ids make rapidfuzz compare exactly (no hashing of strings).
    return [vocabulary.setdefault(word, len(vocabulary)) for word in words]


def _lcs_fmeasure(truth: list[str], prediction: list[str], max_cells: int | None = None) -> float:
    if not truth or not prediction:
        return 0.0
    _check_budget(len(truth), len(prediction), max_cells)
    vocabulary: dict[str, int] = {}
    lcs = LCSseq.similarity(_as_ids(truth, vocabulary), _as_ids(prediction, vocabulary))
    return _fmeasure(lcs / len(prediction), lcs / len(truth))


def rouge_f_measures(truth: str, prediction: str, max_cells: int | None = None) -> tuple[float, float, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of `prediction` against `truth` (rouge-score numbers).

    With `max_cells`, the words are counted before stemming (up to ~80 us a distinct word): more
    than truth x prediction = `max_cells`, or than 2 * sqrt(max_cells) in all, is `OverBudget`."""
    truth_words, prediction_words = _rouge_words(truth), _rouge_words(prediction)
    if max_cells is not None:
        _check_budget(len(truth_words), len(prediction_words), max_cells)
        if len(truth_words) + len(prediction_words) > 2 * math.isqrt(max_cells):
            raise OverBudget(f"{len(truth_words)} + {len(prediction_words)} words to stem exceeds the scoring "
                             f"budget of {2 * math.isqrt(max_cells)}")
    truth_tokens, prediction_tokens = _stemmed(truth_words), _stemmed(prediction_words)
    return (
        _ngram_fmeasure(truth_tokens, prediction_tokens, 1),
        _ngram_fmeasure(truth_tokens, prediction_tokens, 2),
        _lcs_fmeasure(truth_tokens, prediction_tokens, max_cells),
    )


def _word_distance(truth: list[str], prediction: list[str], max_cells: int | None) -> int:
    _check_budget(len(truth), len(prediction), max_cells)
    vocabulary: dict[str, int] = {}
    return Levenshtein.distance(_as_ids(truth, vocabulary), _as_ids(prediction, vocabulary))


def word_error_rate(truth: str, prediction: str, max_cells: int | None = None) -> float:
    """Word-level Levenshtein distance / number of words in `truth` (at least 1), words by `str.split`."""
    truth_words = truth.split()
    return _word_distance(truth_words, prediction.split(), max_cells) / max(1, len(truth_words))


def word_accuracy(truth: str, prediction: str, max_cells: int | None = None) -> float:
    """max(0, 1 - WER). Exact without the quadratic part when the word counts alone make WER >= 1
    (the distance is at least the difference of the counts)."""
    truth_words, prediction_words = truth.split(), prediction.split()
    words = max(1, len(truth_words))
    if abs(len(prediction_words) - len(truth_words)) >= words:
        return 0.0
    return max(0.0, 1.0 - _word_distance(truth_words, prediction_words, max_cells) / words)
