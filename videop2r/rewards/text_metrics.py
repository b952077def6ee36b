"""Fast word-level text metrics: ROUGE-1/2/L F-measures and WER.

ROUGE gives exactly the numbers of the `rouge-score` package
(``RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True).score(truth, prediction)``):
same tokenisation (lower-case, non-alphanumerics to spaces, Porter stems of words longer than
three characters, via the same nltk stemmer) and the same arithmetic, in the same order. It is
faster because stems are cached per word and the LCS runs in C++ (rapidfuzz) instead of a
Python dynamic programme. WER is word-level Levenshtein distance (rapidfuzz) over the truth's
word count.
"""

from __future__ import annotations

import functools
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


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's DefaultTokenizer(use_stemmer=True).tokenize, with cached stems."""
    # After the substitution only [a-z0-9] and spaces are left, so str.split equals its \s+ split.
    return [token for token in map(_stem, _NON_ALPHANUMERIC.sub(" ", text.lower()).split()) if token]


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


def _lcs_fmeasure(truth: list[str], prediction: list[str]) -> float:
    if not truth or not prediction:
        return 0.0
    vocabulary: dict[str, int] = {}
    lcs = LCSseq.similarity(_as_ids(truth, vocabulary), _as_ids(prediction, vocabulary))
    return _fmeasure(lcs / len(prediction), lcs / len(truth))


def rouge_f_measures(truth: str, prediction: str) -> tuple[float, float, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of `prediction` against `truth` (rouge-score numbers)."""
    truth_tokens, prediction_tokens = rouge_tokens(truth), rouge_tokens(prediction)
    return (
        _ngram_fmeasure(truth_tokens, prediction_tokens, 1),
        _ngram_fmeasure(truth_tokens, prediction_tokens, 2),
        _lcs_fmeasure(truth_tokens, prediction_tokens),
    )


def word_error_rate(truth: str, prediction: str) -> float:
    """Word-level Levenshtein distance / number of words in `truth` (at least 1), words by `str.split`."""
    vocabulary: dict[str, int] = {}
    truth_words = _as_ids(truth.split(), vocabulary)
    prediction_words = _as_ids(prediction.split(), vocabulary)
    return Levenshtein.distance(truth_words, prediction_words) / max(1, len(truth_words))
