"""The strict half of the evidence judge: a fact is only stated if the observation commits to it.

Stating the right value is not enough when the observation also offers other candidate values
of the same kind and does not say which one holds — "a red or blue shape", "a blue, green, red
and yellow shape", "two or three circles". That is a hedge (or a list) that names the answer
among the candidates, and a judge that accepts it can be gamed by listing every value.

Other objects may carry other values: "a red circle moving left next to a blue square" pins the
asked one down. The rule, per fact whose kind has a value table (colour, direction, shape):

1. only one candidate value of the kind is mentioned (negated mentions do not count) → fine;
2. several are, and a hedge word ("or", "either", "maybe", "perhaps", ...) occurs → hedged;
3. a clause that names the true value also names another value → a list, not resolved;
4. the values sit in separate clauses (separate objects): the true value's clause must be the
   only one carrying a cue from the question (e.g. "moving" for "the moving shape"); with no
   such cue the observation does not say which object is asked about → not resolved.

Counts: a clause that states the true number next to another number with a hedge or a range
("3 or 4", "3-4 shapes", "three to four") is hedged. No model, deterministic.
"""

from __future__ import annotations

import re

_HEDGE_WORDS = {"or", "either", "maybe", "perhaps", "possibly", "probably", "might", "unsure", "uncertain",
                "unclear", "ambiguous"}
_HEDGE_PHRASES = (("not", "sure"), ("hard", "to", "tell"), ("cannot", "tell"), ("cant", "tell"),
                  ("could", "be"), ("looks", "like"))
_OBJECT_START = r"(?:a|an|the|another|one|two|three|four|five|some)\b"
# Clause boundaries: sentence ends, and connectors that start a new noun phrase (a new object).
_CLAUSE_BREAK = re.compile(
    rf"[.;!?]+(?:\s|$)|\b(?:while|whereas|but)\b|,?\s*\b(?:and|with|next to|beside|behind|near|above|below)\s+"
    rf"(?={_OBJECT_START})|,\s*(?={_OBJECT_START})",
    re.IGNORECASE,
)
# Words of a question that never single out an object.
_QUESTION_STOP = {"what", "which", "who", "how", "many", "much", "is", "are", "was", "were", "does", "do", "did",
                  "the", "a", "an", "of", "in", "on", "to", "this", "that", "video", "clip", "frame", "frames",
                  "shape", "shapes", "object", "objects", "thing", "color", "colour", "direction", "there",
                  "it", "its", "from", "first", "last", "option", "options", "choose", "answer", "with", "at"}
_RANGE = re.compile(r"\b\d+\s*(?:-|–|to)\s*\d+\b|\b[a-z]+\s*(?:-|–|to)\s*[a-z]+\b", re.IGNORECASE)


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def clauses(text: str) -> list[str]:
    """The observation cut at sentence ends and where a new object's noun phrase starts."""
    return [part.strip() for part in _CLAUSE_BREAK.split(text or "") if part and part.strip()]


def hedged(words: list[str]) -> bool:
    if _HEDGE_WORDS.intersection(words):
        return True
    return any(list(phrase) == words[i:i + len(phrase)] for phrase in _HEDGE_PHRASES
               for i in range(len(words) - len(phrase) + 1))


def question_cues(question: str, tokenise) -> set[str]:  # noqa: ANN001 - the judge's own tokens()
    """Stems of the question's words that can single out an object ("moving" in "the moving shape")."""
    return {_stem(w) for w in tokenise(question) if w not in _QUESTION_STOP and not w.isdigit() and len(w) > 2}


def table_values(words: list[str], table: dict[str, tuple[str, ...]], mentions) -> set[str]:  # noqa: ANN001
    """Canonical values of `table` that the words mention without negation."""
    return {canonical for canonical, synonyms in table.items() if any(mentions(words, [s]) for s in synonyms)}


def unresolved_value(true_value: str, observation: str, question: str, table: dict[str, tuple[str, ...]],
                     tokenise, mentions) -> str | None:  # noqa: ANN001
    """Why the observation does not commit to `true_value` of this kind (None when it does)."""
    words = tokenise(observation)
    others = table_values(words, table, mentions) - {true_value}
    if not others:
        return None
    listed = ", ".join(sorted(others | {true_value}))
    if hedged(words):
        return f"hedges between {listed}"
    parts = [(words, table_values(words, table, mentions)) for words in map(tokenise, clauses(observation))]
    with_true = [p for p, values in parts if true_value in values]
    with_other = [p for p, values in parts if values & others]
    if any(true_value in values and values & others for _, values in parts):
        return f"lists {listed} without saying which"
    cues = question_cues(question, tokenise)
    cued = lambda part: bool(cues & {_stem(w) for w in part})  # noqa: E731
    if cues and any(cued(p) for p in with_true) and not any(cued(p) for p in with_other):
        return None
    return f"names {listed} on different objects without singling out the one asked about"


def unresolved_number(wanted: set[float], observation: str, tokenise, numbers) -> str | None:  # noqa: ANN001
    """A count stated as a hedge or range together with another number ("3 or 4", "three to four")."""
    for part in clauses(observation):
        words = tokenise(part)
        stated = numbers(words)
        if not wanted <= stated or not (stated - wanted):
            continue
        if hedged(words) or _RANGE.search(part):
            return "hedges between " + ", ".join(f"{v:g}" for v in sorted(stated))
    return None
