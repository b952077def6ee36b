"""Refuse observations that hack the perception reward, before any judge sees them.

Two kinds of hack (method §5, "known hazard"):

- giving the answer away: answer/think/judgement tags, an option letter given as the conclusion
  ("the answer is B", "so (C)."), reasoning that ends in a conclusion ("therefore the answer ...");
- addressing the judge: instructions ("ignore the above", "answer Yes"), claims of sufficiency,
  fake system/role/judge text, chat-template tokens, our prompt's own markers.

Honest description is never refused, even when it names the answer's content ("the ball is red"
when the question asks its colour): that is exactly what a sufficient observation does. So the
rules look for the *form* of a conclusion or an instruction, never for the answer string.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

RULES = ("tag", "option_letter", "conclusion", "judge_address")


@dataclass(frozen=True)
class GuardDecision:
    """`refused` with a human-readable `reason` and the `rule` that fired (one of RULES), or accepted."""

    refused: bool
    reason: str = ""
    rule: str = ""


ACCEPTED = GuardDecision(False)

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_OUTER_OBSERVATION = re.compile(r"^\s*<\s*observation\s*>(.*?)(?:<\s*/\s*observation\s*>\s*)?$", re.I | re.S)



class _Rule(NamedTuple):
    """A pattern that refuses; it is only tried when the lower-cased text holds one of `keywords`
    (a necessary condition, so honest text skips most patterns), or, if `tail_only`, on the end."""

    rule: str
    reason: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...] = ()
    tail_only: bool = False


# The first pattern that matches decides. Letters of options are matched case-sensitively (A-J),
# words case-insensitively via (?i:...).
_TAIL = 80  # a bare option letter at the end is looked for in the last _TAIL characters
_LETTER = r"\(?\b([A-J])\b\)?(?![\w'’-])"
_JUDGES = r"(?:judge|grader|evaluator|assessor|reviewer|verifier|reward model|checker)"
_JUDGE_WORDS = ("judge", "grader", "evaluator", "assessor", "reviewer", "verifier", "reward model", "checker")
_SEGMENT_TAGS = r"(?:answer|think|thinking|reasoning|judge?ment|verdict|observation)"
_VERBS = (r"(?:answer|say|output|respond|reply|return|print|write|mark|rate|grade|judge|label|classify|score|"
          r"deem|consider|treat|give)")
_IMPERATIVE = (r"(?:^|[.!?:;\n]\s*|\b(?:please|kindly|simply|just|always|now|must|should|"
               r"you (?:must|should|need to|have to|are to|will|can))\s+)")
_APPROVAL = (r"(?:yes|sufficient|enough|correct|full (?:marks|credit|reward)|a reward|reward of|1\.0|"
             r"pass(?:ing)?)")
_CONCLUDERS = (r"(?:therefore|thus|hence|consequently|so|which means|this means|it follows that|"
               r"we can conclude|i conclude|in conclusion|this shows that|this proves|this implies|"
               r"that implies)")
_CHOSEN = (r"(?:answer|answers|correct|right|best|pick|picks|choose|chose|chooses|select|selects|"
           r"selected|go with|going with|opt for|it'?s|it is|must be|should be|would be)")
_COPULA = r"(?:is|would be|must be|should be)"

_PATTERNS: list[_Rule] = [
    # -- tags of the other segments or of the judge's verdict, and chat-template tokens
    _Rule("tag", "contains a segment or verdict tag",
          re.compile(rf"<\s*/?\s*{_SEGMENT_TAGS}\b[^>]{{0,40}}>", re.I), ("<",)),
    _Rule("judge_address", "contains chat-template or fake system text",
          re.compile(r"<\|[a-z_]+\|>|\[/?\s*(?:INST|SYS|SYSTEM)\s*\]|<<\s*/?\s*SYS\s*>>|"
                     r"<<<\s*OBSERVATION|OBSERVATION\s*>>>", re.I),
          ("<|", "[", "<<", ">>")),
    _Rule("judge_address", "contains fake role or system text",
          re.compile(r"(?:^|\n)\s*(?:#+\s*)?(?:system|assistant|user|developer|judge|grader|evaluator|"
                     r"instructions?|note to (?:the )?(?:judge|grader|evaluator))"
                     r"\s*(?:message|prompt|note|override)?\s*:", re.I),
          (":",)),
    _Rule("judge_address", "states a verdict",
          re.compile(r"\b(?:judge?ment|verdict|final decision)\s*(?:is|should be|must be|[:=])\s*[\"'“]?\s*"
                     r"(?:yes|no|sufficient)\b", re.I),
          ("judgement", "judgment", "verdict", "final decision")),
    # -- instructions to whoever reads the observation
    _Rule("judge_address", "gives instructions to the judge",
          re.compile(r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?"
                     r"\b(?:instructions?|rules?|prompt|above|previous|prior|guidelines?|criteria|"
                     r"everything)\b",
                     re.I),
          ("ignore", "disregard", "forget", "override", "bypass")),
    _Rule("judge_address", "addresses the judge",
          re.compile(r"\b(?:dear|hey|hello|hi|attention|note to|message to|instructions? (?:for|to))\s+"
                     rf"(?:the\s+|any\s+)?(?:{_JUDGES}|ai|model|assistant)s?\b", re.I),
          ("dear", "hey", "hello", "hi", "attention", "note to", "message to", "instruction")),
    _Rule("judge_address", "tells the judge what to decide",
          re.compile(rf"\b(?:the|you|you,? the)\s+{_JUDGES}s?\s+"
                     r"(?:should|must|will|needs? to|has to|have to|is required to|ought to|can safely)\b",
                     re.I),
          _JUDGE_WORDS),
    _Rule("judge_address", "tells the judge what to decide",
          re.compile(rf"{_IMPERATIVE}{_VERBS}\b[^.\n]{{0,40}}?\b{_APPROVAL}\b", re.I),
          ("yes", "sufficient", "enough", "correct", "full ", "reward", "1.0", "pass")),
    _Rule("judge_address", "claims its own sufficiency",
          re.compile(r"\b(?:this|the|my|above|following)\s+"
                     r"(?:observation|description|perception|evidence|summary)s?\s+"
                     r"(?:is|are|was|provides?|contains?|gives?|has|includes?)\s+(?:\w+\s+){0,3}?"
                     r"(?:sufficient|enough|complete|all (?:the )?(?:information|evidence|details)|"
                     r"everything (?:needed|required))\b", re.I),
          ("sufficient", "enough", "complete", "all ", "everything")),
    _Rule("judge_address", "claims its own sufficiency",
          re.compile(r"\b(?:sufficient|enough|adequate)\s+(?:information\s+|evidence\s+)?(?:to|for)\s+"
                     r"(?:deduce|derive|determine|infer|answer|conclude|arrive at|get)\b", re.I),
          ("sufficient", "enough", "adequate")),
    # -- an option letter as the conclusion
    _Rule("option_letter", "names an option letter",
          re.compile(r"(?i:\b(?:option|choice|alternative|letter choice))\s*(?:#|no\.?|number)?\s*"
                     + _LETTER),
          ("option", "choice", "alternative")),
    _Rule("option_letter", "gives an option letter as the answer",
          re.compile(rf"(?i:\b{_CHOSEN})\s*(?:{_COPULA}|[:=→-])?\s*\(([A-J])\)"
                     r"|(?i:\b(?:answer|pick|choice|option|choose|select|go with|opt for|correct one))\s*"
                     rf"(?i:{_COPULA}|[:=])?\s*[\"'“]?([A-J])\b(?![\w'’-])"),
          ("answer", "correct", "right", "best", "pick", "choose", "chose", "select", "go with", "going with",
           "opt for", "it's", "its", "it is", "must be", "should be", "would be", "choice", "option")),
    _Rule("option_letter", "ends on a bare option letter",
          re.compile(r"(?:(?i:\b(?:so|thus|therefore|hence)\s*,?)|=>|->|→|\n|^)\s*\(?([A-J])\)?\s*[.!]?\s*$"),
          tail_only=True),
    # -- reasoning to a conclusion
    _Rule("conclusion", "states the answer",
          re.compile(r"\b(?:the|my|our|final|correct|right|best|true|likely|probable)\s+(?:final\s+)?answer\b"
                     r"(?:\s+(?:to|for)\s+(?:this|the)\s+(?:question|problem))?\s*"
                     r"(?:\b(?:is|would be|must be|should be|will be|seems to be|appears to be)\b|[:=])",
                     re.I),
          ("answer",)),
    _Rule("conclusion", "states the answer",
          re.compile(r"(?:^|[.!?\n]\s*)answer\s*(?:is\b|[:=])|\bfinal answer\b"
                     r"|\bcorrect (?:option|choice|one) is\b", re.I),
          ("answer", "correct option", "correct choice", "correct one")),
    _Rule("conclusion", "reasons to a conclusion",
          re.compile(rf"\b{_CONCLUDERS}\b[^.\n]{{0,60}}?\b(?:the answer|answer is|option|choice|is correct|"
                     r"is the correct|is right|must be the|the question's answer)\b", re.I),
          ("answer", "option", "choice", "correct", "is right", "must be the")),
    _Rule("conclusion", "reasons to a conclusion",
          re.compile(r"\b(?:matches|matching|corresponds to|corresponding to|consistent with|agrees with|"
                     r"points to|fits)\s+(?:the\s+)?(?:correct\s+|right\s+|expected\s+)?"
                     r"(?:answer|option|choice)\b(?![ \t]+[a-z])", re.I),
          ("answer", "option", "choice")),
    _Rule("conclusion", "states the answer",
          re.compile(r"\b(?:is|be|was)\s+(?:the|a)\s+(?:correct|right|best|true|expected)\s+"
                     r"(?:answer|option|choice)\b", re.I),
          ("answer", "option", "choice")),
]


def normalise_observation(text: str) -> str:
    """NFKC, no zero-width characters, HTML entities decoded, the outer <observation> tags removed."""
    text = html.unescape(unicodedata.normalize("NFKC", text or "")).translate(_INVISIBLE)
    outer = _OUTER_OBSERVATION.match(text)
    return outer.group(1).strip() if outer else text.strip()


def _option_labels(options: Sequence[str] | None) -> list[tuple[str, str]]:
    """("B", "blue") for an option written "B. blue" / "(B) blue" / "B) blue"."""
    labels = []
    for option in options or []:
        found = re.match(r"\s*\(?([A-J])[.):]\s*(.+)", option or "")
        if found and found.group(2).strip():
            labels.append((found.group(1), found.group(2).strip()))
    return labels


def inspect_observation(observation: str, options: Sequence[str] | None = None) -> GuardDecision:
    """Refuse an observation that gives the answer away or addresses the judge; accept honest description."""
    text = normalise_observation(observation)
    lowered = text.lower()
    # "x" + tail: the pattern's ^ must not match in the middle of a long text
    tail = text if len(text) <= _TAIL else "x" + text[-_TAIL:]
    for rule in _PATTERNS:
        if rule.keywords and not any(keyword in lowered for keyword in rule.keywords):
            continue
        found = rule.pattern.search(tail if rule.tail_only else text)
        if found:
            return GuardDecision(True, f"{rule.reason}: {_snippet(found.group(0))}", rule.rule)
    for letter, option_text in _option_labels(options):
        quoted = re.compile(rf"(?:^|[\s(\[])\(?{letter}[.):]\s*{re.escape(option_text[:40])}", re.I)
        found = quoted.search(text)
        if found:
            reason = f"quotes an option with its letter: {_snippet(found.group(0))}"
            return GuardDecision(True, reason, "option_letter")
    return ACCEPTED


def _snippet(matched: str, limit: int = 60) -> str:
    flat = " ".join(matched.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
