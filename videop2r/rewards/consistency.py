"""Think/answer mismatch: does the final answer contradict the conclusion the think part reached?

The paper reports this as a diagnostic of reasoning quality. We read the conclusion of
`<think>` as the last option letter it names ("option B", "(B)", "answer is B") for multiple
choice, else the last number it states for numerical/regression questions; other problem types,
and think parts that reach no readable conclusion, are not counted either way.
"""

from __future__ import annotations

import re

from videop2r.rewards import segment_response

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_LETTER_RE = re.compile(r"(?:option|answer(?: is)?|choice|choose)\s*\(?([A-Z])\)?\b|\(([A-Z])\)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_NUMERIC_TYPES = {"numerical", "regression"}


def think_conclusion(think: str, problem_type: str) -> str | None:
    """The answer the think part commits to, normalised (a letter or a number), or None."""
    if problem_type == "multiple choice":
        found = [a or b for a, b in _LETTER_RE.findall(think)]
        return found[-1].upper() if found else None
    if problem_type in _NUMERIC_TYPES:
        numbers = _NUMBER_RE.findall(think)
        return _number(numbers[-1]) if numbers else None
    return None


def _number(text: str) -> str:
    try:
        return f"{float(text):.2f}"
    except ValueError:
        return text.strip()


def think_answer_mismatch(response: str, problem_type: str) -> bool | None:
    """True if the answer contradicts the think conclusion, False if it agrees, None if not decidable."""
    segments = segment_response(response)
    think = _THINK_RE.search(response or "")
    if segments.answer is None or think is None:
        return None
    conclusion = think_conclusion(think.group(1), problem_type)
    if conclusion is None:
        return None
    answer = segments.answer.strip()
    if problem_type == "multiple choice":
        letter = re.match(r"\(?([A-Za-z])\b", answer)
        return letter is None or letter.group(1).upper() != conclusion
    numbers = _NUMBER_RE.findall(answer)
    return not numbers or _number(numbers[0]) != conclusion
