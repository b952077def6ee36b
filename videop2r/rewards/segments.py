"""Split a response into its perception and reasoning processes (method §1, §4).

Template: ``<observation>…</observation> <think>…</think> <answer>…</answer>``. Tags are
case-sensitive (``<THINK>`` is plain text), as in Video-R1's checks.

Spans (character offsets, half-open), **ours** where the paper is silent:

- Perception P: from the first ``<observation>`` to the first ``</observation>`` after it. If it
  is never closed, P stops before the next ``<think>``/``<answer>``, else at the end of the text.
- Reasoning R: searched after P (or in the whole text when there is no P; before P only if
  nothing is found after it). It opens at the first ``<think>`` (or, lacking one, the first
  ``<answer>``) and ends after the first ``</answer>`` that closes the answer; with no answer
  block, after ``</think>``; unterminated, at the end of the region.
- Tags belong to the segment they open or close; a run of whitespace just before a segment's
  opening tag belongs to that segment ("whitespace between segments belongs to the next");
  everything else belongs to neither (e.g. trailing text after ``</answer>``).

Well-formedness per process (method §4), each process judged on its own tags:

- P: the text starts (after whitespace) with the only ``<observation>…</observation>`` block.
- R: after that block (or from the start when the text has no ``</observation>``), the rest is
  exactly ``<think>…</think>`` then ``<answer>…</answer>``, whitespace between and around.
- Bodies hold no template tag. Both well-formed ⇔ the whole response matches the template.

Every function here is total: any string gives a result, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from videop2r.rewards.token_offsets import HFTokenizer, SegmentTokenizer

OBSERVATION_OPEN, OBSERVATION_CLOSE = "<observation>", "</observation>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TEMPLATE_TAGS = (OBSERVATION_OPEN, OBSERVATION_CLOSE, THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
REASONING_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

_TAG = r"</?(?:observation|think|answer)>"
_TAG_RE = re.compile(_TAG)
_LEADING_SPACE = re.compile(r"\s*")


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range ``[start, end)`` of a response."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def of(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class Segments:
    """The two processes of one response."""

    perception: Span | None
    reasoning: Span | None
    perception_well_formed: bool
    reasoning_well_formed: bool
    # Stripped text of the first complete <answer> block inside the reasoning span; None if absent.
    answer: str | None


def segment_response(response: str) -> Segments:
    """Spans, per-process well-formedness and the answer of `response` (rules in the module doc)."""
    text = response if isinstance(response, str) else ""
    perception = perception_span(text)
    reasoning = reasoning_span(text, perception)
    return Segments(
        perception=perception,
        reasoning=reasoning,
        perception_well_formed=perception_well_formed(text),
        reasoning_well_formed=reasoning_well_formed(text),
        answer=answer_in(text, reasoning),
    )


def extract_answer(response: str) -> str | None:
    """The answer only (no format checks): stripped first complete <answer> block of the reasoning span."""
    text = response if isinstance(response, str) else ""
    return answer_in(text, reasoning_span(text))


def _whitespace_start(text: str, pos: int, floor: int) -> int:
    """Leftmost index ≥ floor such that text[index:pos] is all whitespace."""
    return floor + len(text[floor:pos].rstrip())


def perception_span(text: str) -> Span | None:
    open_at = text.find(OBSERVATION_OPEN)
    if open_at < 0:
        return None
    body_at = open_at + len(OBSERVATION_OPEN)
    close_at = text.find(OBSERVATION_CLOSE, body_at)
    if close_at >= 0:
        end = close_at + len(OBSERVATION_CLOSE)
    else:
        following = [p for p in (text.find(THINK_OPEN, body_at), text.find(ANSWER_OPEN, body_at)) if p >= 0]
        # Unclosed: stop before the next segment, leaving it the whitespace in front of its tag.
        end = _whitespace_start(text, min(following), body_at) if following else len(text)
    return Span(_whitespace_start(text, open_at, 0), end)


def _reasoning_in(text: str, low: int, high: int) -> Span | None:
    open_at = text.find(THINK_OPEN, low, high)
    if open_at < 0:
        open_at = text.find(ANSWER_OPEN, low, high)
    if open_at < 0:
        return None
    answer_at = text.find(ANSWER_OPEN, open_at, high)
    if answer_at >= 0:
        close_at = text.find(ANSWER_CLOSE, answer_at + len(ANSWER_OPEN), high)
        end = close_at + len(ANSWER_CLOSE) if close_at >= 0 else high
    else:
        close_at = text.find(THINK_CLOSE, open_at + len(THINK_OPEN), high)
        end = close_at + len(THINK_CLOSE) if close_at >= 0 else high
    return Span(_whitespace_start(text, open_at, low), end)


def reasoning_span(text: str, perception: Span | None = None) -> Span | None:
    """The reasoning span; pass the perception span if already known (else it is recomputed)."""
    if perception is None:
        perception = perception_span(text)
    if perception is None:
        return _reasoning_in(text, 0, len(text))
    after = _reasoning_in(text, perception.end, len(text))
    return after if after is not None else _reasoning_in(text, 0, perception.start)


def answer_in(text: str, reasoning: Span | None) -> str | None:
    """Stripped content of the first complete ``<answer>…</answer>`` inside `reasoning`."""
    if reasoning is None:
        return None
    open_at = text.find(ANSWER_OPEN, reasoning.start, reasoning.end)
    if open_at < 0:
        return None
    body_at = open_at + len(ANSWER_OPEN)
    close_at = text.find(ANSWER_CLOSE, body_at, reasoning.end)
    if close_at < 0:
        return None
    return text[body_at:close_at].strip()


def perception_well_formed(text: str) -> bool:
    """One ``<observation>`` block, first in the text, with no template tag inside."""
    if not isinstance(text, str):
        return False
    open_at = len(text) - len(text.lstrip())
    if not text.startswith(OBSERVATION_OPEN, open_at):
        return False
    if text.count(OBSERVATION_OPEN) != 1 or text.count(OBSERVATION_CLOSE) != 1:
        return False
    close_at = text.find(OBSERVATION_CLOSE)
    return close_at > open_at and _TAG_RE.search(text, open_at + len(OBSERVATION_OPEN), close_at) is None


def _block_end(text: str, pos: int, open_tag: str, close_tag: str) -> int:
    """End of an ``open_tag body close_tag`` block at `pos` (after optional whitespace), or -1.

    The body may hold no template tag, so the block ends at the first `close_tag`.
    """
    pos = _LEADING_SPACE.match(text, pos).end()
    if not text.startswith(open_tag, pos):
        return -1
    body_at = pos + len(open_tag)
    close_at = text.find(close_tag, body_at)
    if close_at < 0 or _TAG_RE.search(text, body_at, close_at) is not None:
        return -1
    return close_at + len(close_tag)


def reasoning_well_formed(text: str) -> bool:
    """After the observation: exactly one ``<think>`` block then one ``<answer>`` block, nothing else."""
    if not isinstance(text, str):
        return False
    close_at = text.rfind(OBSERVATION_CLOSE)
    start = close_at + len(OBSERVATION_CLOSE) if close_at >= 0 else 0
    if any(text.find(tag, 0, start) >= 0 for tag in REASONING_TAGS):
        return False
    think_end = _block_end(text, start, THINK_OPEN, THINK_CLOSE)
    answer_end = _block_end(text, think_end, ANSWER_OPEN, ANSWER_CLOSE) if think_end >= 0 else -1
    return answer_end >= 0 and _LEADING_SPACE.match(text, answer_end).end() == len(text)


@dataclass(frozen=True, slots=True)
class TokenMasks:
    """Which tokens of a response belong to each process; the two masks are disjoint, shape ``(n_tokens,)``."""

    perception: np.ndarray
    reasoning: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.perception.shape[0])

    @property
    def perception_length(self) -> int:
        return int(self.perception.sum())

    @property
    def reasoning_length(self) -> int:
        return int(self.reasoning.sum())


def masks_from_starts(starts: np.ndarray, segments: Segments) -> TokenMasks:
    """Assign each token (given by its start offset, shape ``(n,)``) to the span holding that offset."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)

    def inside(span: Span | None) -> np.ndarray:
        if span is None:
            return np.zeros(starts.shape, dtype=bool)
        return (starts >= span.start) & (starts < span.end)

    return TokenMasks(perception=inside(segments.perception), reasoning=inside(segments.reasoning))


def token_masks(response: str, tokenizer: SegmentTokenizer, segments: Segments | None = None) -> TokenMasks:
    """Per-token process masks of `response` as `tokenizer` splits it."""
    text = response if isinstance(response, str) else ""
    if segments is None:
        segments = segment_response(text)
    return masks_from_starts(tokenizer.offsets(text)[:, 0], segments)


def token_masks_for_ids(token_ids: list[int], tokenizer: HFTokenizer) -> tuple[str, Segments, TokenMasks]:
    """Masks aligned with generated `token_ids` (not a re-tokenisation): text, segments, masks ``(len(ids),)``."""
    text, starts = tokenizer.decode_with_offsets(token_ids)
    segments = segment_response(text)
    return text, segments, masks_from_starts(starts, segments)
