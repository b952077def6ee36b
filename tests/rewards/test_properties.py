"""Any string — empty, huge, unicode, unbalanced, nested, duplicated or upper-case tags — gives
in-range rewards and never raises (hypothesis, thousands of cases over every function)."""

from __future__ import annotations

import json
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videop2r.rewards import (
    ProblemType,
    RewardShape,
    ScoringSettings,
    WhitespaceTokenizer,
    answer_accuracy,
    extract_answer,
    mean_relative_accuracy,
    perception_well_formed,
    reasoning_well_formed,
    score_response,
    segment_response,
    token_masks,
    token_masks_for_ids,
)
from videop2r.rewards.segments import TEMPLATE_TAGS

def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = st.sampled_from(
    list(TEMPLATE_TAGS)
    + [tag.upper() for tag in TEMPLATE_TAGS]
    + ["<", ">", "</", "<observation", "think>", "<answer >", "< think>", "\ud800", "\x00", "\u2028"]
    + [" ", "  ", "\n", "\t", "\u3000", "A", "B.", "3.14", "1,000", "-2", "red ball", "日本", "😀", "é"]
)
# Tag soup: the fragments above in any order and number, mixed with arbitrary unicode text.
RESPONSES = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=24).map("".join)
BODIES = st.text(max_size=30).filter(lambda s: not any(tag in s for tag in TEMPLATE_TAGS))
TEMPLATE_RE = re.compile(
    r"\s*<observation>(?:(?!</?(?:observation|think|answer)>).)*</observation>"
    r"\s*<think>(?:(?!</?(?:observation|think|answer)>).)*</think>"
    r"\s*<answer>(?:(?!</?(?:observation|think|answer)>).)*</answer>\s*",
    re.DOTALL,
)


@examples(300)
@given(RESPONSES)
def test_spans_are_disjoint_in_bounds_and_start_at_their_tags(text: str) -> None:
    segments = segment_response(text)
    present = [span for span in (segments.perception, segments.reasoning) if span is not None]
    for span in present:
        assert 0 <= span.start <= span.end <= len(text)
        # Leading whitespace is maximal: the character before the span is not whitespace.
        assert span.start == 0 or not text[span.start - 1].isspace() or any(
            other.end == span.start for other in present if other is not span
        )
    if len(present) == 2:
        first, second = sorted(present, key=lambda s: s.start)
        assert first.end <= second.start
    if segments.perception is not None:
        assert segments.perception.of(text).lstrip().startswith("<observation>")
    if segments.reasoning is not None:
        body = segments.reasoning.of(text).lstrip()
        assert body.startswith("<think>") or body.startswith("<answer>")
    if segments.answer is not None:
        assert segments.answer == segments.answer.strip() and "</answer>" not in segments.answer
    assert extract_answer(text) == segments.answer


@examples(400)
@given(RESPONSES)
def test_both_formats_hold_exactly_when_the_whole_template_matches(text: str) -> None:
    both = perception_well_formed(text) and reasoning_well_formed(text)
    assert both == (TEMPLATE_RE.fullmatch(text) is not None)


@examples(200)
@given(st.tuples(BODIES, BODIES, BODIES), st.tuples(*[st.sampled_from(["", " ", "\n", " \n "])] * 4))
def test_template_responses_are_well_formed_and_split_exactly(bodies, gaps) -> None:
    observation, think, answer = bodies
    text = (
        f"{gaps[0]}<observation>{observation}</observation>{gaps[1]}<think>{think}</think>"
        f"{gaps[2]}<answer>{answer}</answer>{gaps[3]}"
    )
    segments = segment_response(text)
    assert segments.perception_well_formed and segments.reasoning_well_formed
    split = text.index("</observation>") + len("</observation>")
    assert segments.perception.of(text) == text[:split]
    end = text.rindex("</answer>") + len("</answer>")
    assert segments.reasoning.of(text) == text[split:end]
    assert segments.answer == answer.strip()


@examples(300)
@given(RESPONSES)
def test_whitespace_masks_are_consistent(text: str) -> None:
    segments = segment_response(text)
    masks = token_masks(text, WhitespaceTokenizer(), segments)
    assert WhitespaceTokenizer().offsets(text).tolist() == [list(m.span()) for m in re.finditer(r"\S+", text)]
    assert masks.n_tokens == len(text.split())
    assert not (masks.perception & masks.reasoning).any()
    for mask in (masks.perception, masks.reasoning):
        chosen = np.flatnonzero(mask)
        assert chosen.size == 0 or chosen[-1] - chosen[0] + 1 == chosen.size  # contiguous


@examples(200)
@given(RESPONSES)
def test_bpe_masks_by_offsets_and_by_ids_agree(bpe_tokenizer, text: str) -> None:
    text = text.replace("\ud800", "")  # a byte-level BPE cannot encode a lone surrogate to ids
    masks = token_masks(text, bpe_tokenizer)
    offsets = bpe_tokenizer.offsets(text)
    assert masks.n_tokens == len(offsets)
    assert not (masks.perception & masks.reasoning).any()
    segments = segment_response(text)
    for span, mask in ((segments.perception, masks.perception), (segments.reasoning, masks.reasoning)):
        starts = offsets[mask, 0]
        assert span is not None or starts.size == 0
        if span is not None:
            assert ((starts >= span.start) & (starts < span.end)).all()
    ids = bpe_tokenizer.encode(text)
    decoded, _, id_masks = token_masks_for_ids(ids, bpe_tokenizer)
    assert decoded == text
    # The linear (streamed) decoding must take the fast path here and agree with exact prefixes.
    streamed = bpe_tokenizer._streamed_starts(ids, text)
    assert streamed is not None and streamed.tolist() == bpe_tokenizer._exact_starts(ids, text).tolist()
    assert id_masks.perception.tolist() == masks.perception.tolist()
    assert id_masks.reasoning.tolist() == masks.reasoning.tolist()


@examples(100)
@given(RESPONSES)
def test_wordpiece_masks_never_raise(minilm_tokenizer, text: str) -> None:
    masks = token_masks(text, minilm_tokenizer)
    assert masks.perception_length + masks.reasoning_length <= masks.n_tokens


ANSWERS = st.one_of(RESPONSES, st.floats(allow_nan=True).map(repr), st.integers().map(str), st.none())
OPTIONS = st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=10), FRAGMENTS), max_size=6))


@examples(400)
@given(st.sampled_from(list(ProblemType)), ANSWERS, RESPONSES, OPTIONS)
def test_every_accuracy_is_in_range(problem_type, prediction, truth, options) -> None:
    value = answer_accuracy(problem_type, prediction, truth, options)
    assert isinstance(value, float) and 0.0 <= value <= 1.0
    mra = mean_relative_accuracy(prediction or "", truth)
    assert 0.0 <= mra <= 1.0 and abs(mra * 10 - round(mra * 10)) < 1e-9  # a multiple of 1/10


@examples(200)
@given(st.sampled_from(list(ProblemType)), st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_a_number_equal_to_the_truth_scores_one(problem_type, number) -> None:
    text = repr(float(number))
    if problem_type is ProblemType.MULTIPLE_CHOICE:
        text = "C"
    assert answer_accuracy(problem_type, text, text) == 1.0
    assert mean_relative_accuracy(text, text) == (1.0 if problem_type is not ProblemType.MULTIPLE_CHOICE else 0.0)


SHAPES = st.builds(
    RewardShape,
    use_perception_reward=st.booleans(),
    use_reasoning_reward=st.booleans(),
    use_length_reward=st.booleans(),
)


@examples(300)
@given(
    RESPONSES,
    st.sampled_from([t.value for t in ProblemType] + ["Multiple_Choice", "ocr", "bogus"]),
    RESPONSES,
    st.one_of(st.none(), st.booleans()),
    SHAPES,
)
def test_score_response_is_total_and_in_range(response, problem_type, solution, verdict, shape) -> None:
    result = score_response(
        {"id": 1, "problem_type": problem_type, "response": response, "solution": solution,
         "perception_verdict": verdict},
        ScoringSettings(shape=shape),
    )
    json.dumps(result)  # serialisable
    assert set(result) == {"id", "perception", "reasoning"}
    for process in ("perception", "reasoning"):
        components = result[process]
        assert components["format"] in (0, 1)
        assert isinstance(components["length"], int) and components["length"] >= 0
        if "accuracy" in components:
            assert 0.0 <= components["accuracy"] <= 1.0
            assert components["length_reward"] in (0.0, shape.length_bonus)
            assert 0.0 <= components["total"] <= 2.0 + shape.length_bonus
    assert ("accuracy" in result["perception"]) == (verdict is not None)


def test_megabyte_adversarial_inputs_are_scored(bpe_tokenizer) -> None:
    cases = [
        "<observation>" * 80_000,
        "</answer><answer>" * 60_000,
        " " * 1_000_000,
        "<" * 1_000_000,
        "<observation>" + "<think>x</think>" * 60_000 + "</observation>",
        "<OBSERVATION>é😀" * 70_000,
    ]
    for text in cases:
        # The whole megabyte with the whitespace tokenizer; a real BPE on 64 KB of the same soup
        # (a HF tokenizer spends seconds per megabyte of tag soup in Rust, not in our code).
        for tokenizer, sample in ((WhitespaceTokenizer(), text), (bpe_tokenizer, text[:65_536])):
            result = score_response(
                {"id": "big", "problem_type": "free-form", "response": sample, "answer": "x"},
                ScoringSettings(tokenizer=tokenizer),
            )
            assert 0.0 <= result["reasoning"]["accuracy"] <= 1.0
            assert result["perception"]["length"] + result["reasoning"]["length"] <= len(sample)
