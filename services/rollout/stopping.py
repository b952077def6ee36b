"""When a sample stops, and what its text is — SGLang's order of checks and finish reasons.

Checks after every sampled token, in SGLang's order (``Req.check_finished``): the length limit
(``{"type": "length", "length": max_new_tokens}``), then an EOS token (unless ``ignore_eos``) or a
``stop_token_ids`` token (``{"type": "stop", "matched": token_id}``), then a ``stop`` string in the
decoded tail (``{"type": "stop", "matched": "the string"}``). ``output_ids`` keep every sampled
token, the stop token included (its log-prob is part of the rollout); the text drops special
tokens (``skip_special_tokens``) and is cut before a matched stop string unless ``no_stop_trim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StopRule:
    """The stop conditions of one request."""

    max_new_tokens: int
    eos_ids: frozenset[int]
    stop_token_ids: frozenset[int] = frozenset()
    stop_strings: tuple[str, ...] = ()
    ignore_eos: bool = False
    # tokens of the longest stop string (+2): the decoded window that can contain a new match
    tail_tokens: int = 0

    @classmethod
    def build(cls, tokenizer: Any, max_new_tokens: int, eos_ids: set[int], stop_token_ids: set[int],
              stop_strings: list[str], ignore_eos: bool) -> "StopRule":
        longest = max((len(tokenizer.encode(text, add_special_tokens=False)) for text in stop_strings), default=0)
        return cls(max_new_tokens, frozenset(eos_ids), frozenset(stop_token_ids), tuple(stop_strings),
                   ignore_eos, longest + 2)

    def check(self, output_ids: list[int], tokenizer: Any) -> dict[str, Any] | None:
        """The finish reason after the last token of `output_ids`, or None to go on."""
        if len(output_ids) >= self.max_new_tokens:
            return {"type": "length", "length": self.max_new_tokens}
        last = output_ids[-1]
        if (not self.ignore_eos and last in self.eos_ids) or last in self.stop_token_ids:
            return {"type": "stop", "matched": int(last)}
        if self.stop_strings:
            tail = tokenizer.decode(output_ids[-self.tail_tokens:], skip_special_tokens=False)
            for text in self.stop_strings:
                if text in tail:
                    return {"type": "stop", "matched": text}
        return None

    def blocked_until_min(self) -> frozenset[int]:
        """Tokens that would end the sample: masked while fewer than min_new_tokens are out."""
        return self.stop_token_ids | (frozenset() if self.ignore_eos else self.eos_ids)


@dataclass
class SampleOutput:
    """One finished sample."""

    output_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: dict[str, Any] | None = None
    text: str = ""


def final_text(tokenizer: Any, sample: SampleOutput, skip_special_tokens: bool, no_stop_trim: bool) -> str:
    text = tokenizer.decode(sample.output_ids, skip_special_tokens=skip_special_tokens)
    matched = (sample.finish_reason or {}).get("matched")
    if isinstance(matched, str) and not no_stop_trim:
        cut = text.find(matched)
        if cut >= 0:
            text = text[:cut]
    return text
