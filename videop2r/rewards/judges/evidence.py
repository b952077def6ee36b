"""The evidence judge: sufficient iff the observation states every ground-truth fact of the record.

Records of the synthetic set carry facts such as ``"colour: red"``, ``"direction: left"``,
``"count: 3"``, ``"shape: circle"``, ``"word: CAT"``. Matching is on normalised tokens with
synonyms per kind (crimson is red, leftward is left, "three" and "3" are 3, a disc is a circle),
and a negated mention ("not red") does not count. No model, no randomness: the demo's reward.

Strict (judges/resolution.py): an observation that hedges between, or lists without resolving,
several candidate values of an asked fact ("a red or blue shape", "a blue, green, red and yellow
shape") does not state it; one that gives other objects other values while pinning down the
asked one ("a red circle moving left next to a blue square") still does.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING

from videop2r.rewards.judges.base import Judge, JudgeError, Verdict
from videop2r.rewards.judges.resolution import unresolved_number, unresolved_value
from videop2r.rewards.judges.schema import JudgeItem

if TYPE_CHECKING:
    from videop2r.config import RewardConfig

COLOURS: dict[str, tuple[str, ...]] = {
    "red": ("red", "reddish", "crimson", "scarlet"),
    "orange": ("orange", "orangish"),
    "yellow": ("yellow", "yellowish", "golden", "gold"),
    "green": ("green", "greenish", "lime", "emerald"),
    "blue": ("blue", "bluish", "navy", "azure"),
    "purple": ("purple", "purplish", "violet", "lilac"),
    "pink": ("pink", "pinkish", "rose"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "magenta": ("magenta", "fuchsia"),
    "white": ("white",),
    "black": ("black",),
    "gray": ("gray", "grayish", "silver"),
    "brown": ("brown", "brownish"),
}
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "left": ("left", "leftward", "leftwards", "westward", "westwards"),
    "right": ("right", "rightward", "rightwards", "eastward", "eastwards"),
    "up": ("up", "upward", "upwards", "rises", "rising", "ascends", "ascending", "climbs", "climbing"),
    "down": ("down", "downward", "downwards", "falls", "falling", "descends", "descending", "drops", "sinks",
             "sinking"),
    "clockwise": ("clockwise",),
    "counterclockwise": ("counterclockwise",),
    "still": ("still", "stationary", "static", "motionless", "stays", "stopped"),
}
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circular", "round", "disc", "disk", "ball", "dot", "ring"),
    "square": ("square", "squared"),
    "rectangle": ("rectangle", "rectangular", "bar", "box"),
    "triangle": ("triangle", "triangular"),
    "star": ("star", "starshaped"),
    "diamond": ("diamond", "rhombus"),
    "ellipse": ("ellipse", "oval", "elliptical"),
    "cross": ("cross", "plus"),
    "hexagon": ("hexagon", "hexagonal"),
    "pentagon": ("pentagon", "pentagonal"),
}
# Which synonym table a fact's key selects.
KIND_OF_KEY = {
    "colour": COLOURS, "color": COLOURS,
    "direction": DIRECTIONS, "motion": DIRECTIONS, "movement": DIRECTIONS, "rotation": DIRECTIONS,
    "shape": SHAPES, "object": SHAPES,
}
NUMBER_KEYS = {"count", "number", "quantity", "total", "value", "amount", "digit", "distance"}

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
NUMBER_WORDS: dict[str, int] = {word: value for value, word in enumerate(_UNITS)} | _TENS | {
    "once": 1, "single": 1, "twice": 2, "thrice": 3, "pair": 2, "dozen": 12, "none": 0, "no": 0,
}
_NEGATIONS = {"not", "no", "never", "isnt", "arent", "wasnt", "werent", "doesnt", "dont", "without",
              "neither", "nor", "non"}
# Spelling and phrasing variants rewritten before tokenising (order matters: longest first).
_REWRITES = [
    (r"\b(?:counter|anti)[\s-]?clockwise\b", "counterclockwise"),
    (r"\bfrom (?:the )?left (?:side )?to (?:the )?right\b|\bleft to right\b", "rightward"),
    (r"\bfrom (?:the )?right (?:side )?to (?:the )?left\b|\bright to left\b", "leftward"),
    (r"\bfrom (?:the )?top to (?:the )?bottom\b|\btop to bottom\b", "downward"),
    (r"\bfrom (?:the )?bottom to (?:the )?top\b|\bbottom to top\b", "upward"),
    (r"\bcolour", "color"), (r"\bgrey", "gray"), (r"\bstar-shaped\b", "starshaped"),
    (r"(\w)['’](\w)", r"\1\2"),  # isn't -> isnt
]


def tokens(text: str) -> list[str]:
    """Lower-case word/number tokens after the spelling and phrasing rewrites."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text)
    return re.findall(r"\d+(?:\.\d+)?|[a-z]+", text)


def _numbers(words: list[str]) -> set[float]:
    """Every number the words state, in digits or in words ("twenty one" states 21 and 20)."""
    found: set[float] = set()
    for index, word in enumerate(words):
        if re.fullmatch(r"\d+(?:\.\d+)?", word):
            found.add(float(word))
        elif word in NUMBER_WORDS and word != "no":
            found.add(float(NUMBER_WORDS[word]))
            following = words[index + 1] if index + 1 < len(words) else ""
            if word in _TENS and 0 < NUMBER_WORDS.get(following, 0) < 10:
                found.add(float(_TENS[word] + NUMBER_WORDS[following]))
    return found


def _plural_forms(word: str) -> set[str]:
    return {word, word + "s", word + "es"}


def _mentions(words: list[str], phrase: list[str]) -> bool:
    """True if `phrase` occurs in `words` (last word may be plural) and is not negated just before."""
    span = len(phrase)
    for start in range(len(words) - span + 1):
        window = words[start:start + span]
        if window[:-1] != phrase[:-1] or window[-1] not in _plural_forms(phrase[-1]):
            continue
        before = words[max(0, start - 2):start]
        if not _NEGATIONS.intersection(before):
            return True
    return False


def parse_fact(fact: str) -> tuple[str, str]:
    """``"colour: red"`` -> ("color", "red"); a fact without a key has key ""."""
    key, sep, value = fact.partition(":")
    if not sep:
        return "", fact.strip()
    key_words = tokens(key)
    return (" ".join(key_words), value.strip())


_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SPAN = re.compile(rf"\bfrom\s+(?:[a-z]\s*=\s*)?{_NUMBER}\s+to\s+(?:[a-z]\s*=\s*)?{_NUMBER}", re.I)


def _spans(text: str) -> set[float]:
    """Lengths of the spans the text states as "from x=40 to x=10" (a distance stated by its ends)."""
    return {abs(float(end) - float(start)) for start, end in _SPAN.findall(text)}


def fact_stated(fact: str, observation_words: list[str], observation: str = "") -> bool:
    """Whether the observation (tokenised, and as text for spans) states one ground-truth fact."""
    key, value = parse_fact(fact)
    value_words = tokens(value)
    if not value_words:  # ":" or "colour:" names nothing the observation could state
        return False
    if key in NUMBER_KEYS or (len(value_words) == 1 and re.fullmatch(r"\d+(?:\.\d+)?", value_words[0])):
        wanted = _numbers(value_words)
        if wanted:
            stated = _numbers(observation_words) | (_spans(observation) if key == "distance" else set())
            return wanted <= stated
    table = KIND_OF_KEY.get(key)
    if table is not None and len(value_words) == 1:
        canonical = value_words[0]
        synonyms: Iterable[str] = table.get(canonical, (canonical,))
        return any(_mentions(observation_words, [synonym]) for synonym in synonyms)
    return _mentions(observation_words, value_words)


def missing_facts(evidence: list[str], observation: str) -> list[str]:
    """The facts of `evidence` that `observation` does not state, in order."""
    words = tokens(observation)
    return [fact for fact in evidence if not fact_stated(fact, words, observation)]


def unresolved(fact: str, observation: str, question: str = "") -> str | None:
    """Why an observation that states `fact` still does not commit to it (None when it does)."""
    key, value = parse_fact(fact)
    value_words = tokens(value)
    if key in NUMBER_KEYS - {"distance"}:
        wanted = _numbers(value_words)
        return unresolved_number(wanted, observation, tokens, _numbers) if wanted else None
    table = KIND_OF_KEY.get(key)
    if table is None or len(value_words) != 1:
        return None
    canonical = next((name for name, synonyms in table.items() if value_words[0] in synonyms), value_words[0])
    return unresolved_value(canonical, observation, question, table, tokens, _mentions)


def judge_facts(evidence: list[str], observation: str, question: str = "") -> tuple[bool, str]:
    """(sufficient, reason): every fact stated, and none of them hedged or left unresolved."""
    missing = missing_facts(evidence, observation)
    if missing:
        return False, "missing evidence: " + "; ".join(missing)
    for fact in evidence:
        why = unresolved(fact, observation, question)
        if why:
            return False, f"not committed to {fact!r}: {why}"
    return True, f"states all {len(evidence)} evidence facts"

_INLINE_CHARS = 16 * 1024


class EvidenceJudge(Judge):
    name = "evidence"

    async def judge(self, item: JudgeItem) -> Verdict:
        if not item.evidence:
            raise JudgeError("record has no evidence facts; the evidence judge needs them")
        if len(item.observation) > _INLINE_CHARS:  # long text: judge off the event loop
            sufficient, reason = await asyncio.to_thread(judge_facts, item.evidence, item.observation, item.question)
        else:
            sufficient, reason = judge_facts(item.evidence, item.observation, item.question)
        return Verdict(sufficient, reason)


def evidence_from_config(config: "RewardConfig") -> EvidenceJudge:
    return EvidenceJudge()
