"""Think/answer mismatch diagnostic."""

from __future__ import annotations

import pytest

from videop2r.rewards.consistency import think_answer_mismatch


@pytest.mark.parametrize(
    ("response", "problem_type", "expected"),
    [
        ("<observation>red</observation><think>The colour is red, option A.</think><answer>A</answer>",
         "multiple choice", False),
        ("<observation>red</observation><think>The colour is red, option A.</think><answer>C</answer>",
         "multiple choice", True),
        ("<observation>x</observation><think>First B, no wait, the answer is (D)</think><answer>D. up</answer>",
         "multiple choice", False),
        ("<observation>x</observation><think>I count 3 shapes.</think><answer>3</answer>", "numerical", False),
        ("<observation>x</observation><think>I count 3 shapes.</think><answer>4</answer>", "numerical", True),
        ("<observation>x</observation><think>It moved 12.5 px</think><answer>12.50</answer>", "regression", False),
        ("<observation>x</observation><think>no letter here</think><answer>A</answer>", "multiple choice", None),
        ("<observation>x</observation><think>option A</think>", "multiple choice", None),
        ("<observation>x</observation><think>it says CAT</think><answer>DOG</answer>", "OCR", None),
        ("", "multiple choice", None),
    ],
)
def test_mismatch(response, problem_type, expected):
    assert think_answer_mismatch(response, problem_type) is expected
