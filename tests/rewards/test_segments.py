"""Segment spans and per-process well-formedness on hand-made responses (method §1, §4)."""

from __future__ import annotations

import pytest

from videop2r.rewards import Span, perception_well_formed, reasoning_well_formed, segment_response

TEMPLATE = "<observation> I see a red ball. </observation>\n<think> Red, so A. </think>\n<answer> A </answer>"


def spans(text: str) -> tuple[str | None, str | None]:
    segments = segment_response(text)
    return (
        segments.perception.of(text) if segments.perception else None,
        segments.reasoning.of(text) if segments.reasoning else None,
    )


def test_template_splits_with_whitespace_going_to_the_next_segment() -> None:
    segments = segment_response(TEMPLATE)
    assert segments.perception == Span(0, 46)
    assert spans(TEMPLATE) == (
        "<observation> I see a red ball. </observation>",
        "\n<think> Red, so A. </think>\n<answer> A </answer>",
    )
    assert segments.perception_well_formed and segments.reasoning_well_formed
    assert segments.answer == "A"


def test_leading_whitespace_belongs_to_perception_and_trailing_text_to_neither() -> None:
    text = "  \n" + TEMPLATE + "  trailing words"
    perception, reasoning = spans(text)
    assert perception.startswith("  \n<observation>")
    assert reasoning.endswith("</answer>")
    assert "trailing" not in perception + reasoning
    # Trailing text breaks the reasoning format (nothing may follow the answer), not the perception one.
    assert perception_well_formed(text) and not reasoning_well_formed(text)


@pytest.mark.parametrize(
    ("text", "perception", "reasoning", "p_ok", "r_ok", "answer"),
    [
        ("", None, None, False, False, None),
        ("plain text", None, None, False, False, None),
        ("<think>x</think><answer>y</answer>", None, "<think>x</think><answer>y</answer>", False, True, "y"),
        ("<observation>a</observation>", "<observation>a</observation>", None, True, False, None),
        # unclosed observation stops before the next segment; its whitespace goes to that segment
        ("<observation>a <think>b</think><answer>c</answer>", "<observation>a", " <think>b</think><answer>c</answer>",
         False, False, "c"),
        # unclosed answer runs to the end and yields no answer
        ("<observation>a</observation><think>b</think><answer>c", "<observation>a</observation>",
         "<think>b</think><answer>c", True, False, None),
        # answer without think still forms the reasoning span (format fails)
        ("<observation>a</observation> <answer>c</answer>", "<observation>a</observation>", " <answer>c</answer>",
         True, False, "c"),
        # think without answer: span ends at </think>
        ("<observation>a</observation><think>b</think> tail", "<observation>a</observation>", "<think>b</think>",
         True, False, None),
        # template tags nested inside the observation: everything is perception, no reasoning
        ("<observation><think>a</think><answer>B</answer></observation>",
         "<observation><think>a</think><answer>B</answer></observation>", None, False, False, None),
        # reasoning before the observation is found before it
        ("<think>a</think><answer>b</answer><observation>c</observation>", "<observation>c</observation>",
         "<think>a</think><answer>b</answer>", False, False, "b"),
        # upper-case tags are text
        ("<OBSERVATION>a</OBSERVATION><THINK>b</THINK><ANSWER>c</ANSWER>", None, None, False, False, None),
        # junk between the blocks: reasoning is not well-formed, perception still is
        ("<observation>a</observation> junk <think>b</think><answer>c</answer>", "<observation>a</observation>",
         " <think>b</think><answer>c</answer>", True, False, "c"),
        # text before the observation: perception is not first
        ("hi <observation>a</observation><think>b</think><answer>c</answer>", " <observation>a</observation>",
         "<think>b</think><answer>c</answer>", False, True, "c"),
        # two observation blocks: perception malformed, reasoning judged after the last one
        ("<observation>a</observation><observation>b</observation><think>c</think><answer>d</answer>",
         "<observation>a</observation>", "<think>c</think><answer>d</answer>", False, True, "d"),
        # duplicated answer: the first complete block is the answer, the format fails
        ("<think>a</think><answer>1</answer><answer>2</answer>", None, "<think>a</think><answer>1</answer>",
         False, False, "1"),
    ],
)
def test_hand_made_cases(text, perception, reasoning, p_ok, r_ok, answer) -> None:
    segments = segment_response(text)
    assert spans(text) == (perception, reasoning)
    assert (segments.perception_well_formed, segments.reasoning_well_formed) == (p_ok, r_ok)
    assert segments.answer == answer


def test_answer_is_stripped_multiline_text() -> None:
    text = "<think>t</think><answer>\n  the red\nball  \n</answer>"
    assert segment_response(text).answer == "the red\nball"


def test_a_megabyte_of_text_is_quick_and_correct() -> None:
    body = "word " * 200_000
    text = f"<observation> {body}</observation><think>{body}</think><answer>A</answer>"
    segments = segment_response(text)
    assert segments.perception_well_formed and segments.reasoning_well_formed and segments.answer == "A"
    assert len(segments.perception) + len(segments.reasoning) == len(text)


def test_non_string_input_is_treated_as_empty() -> None:
    segments = segment_response(None)  # type: ignore[arg-type]
    assert segments.perception is None and segments.reasoning is None and segments.answer is None
