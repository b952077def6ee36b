"""The perception-bottleneck task: deterministic, teacher-filtered SFT split, hard clips really harder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from videop2r.data.hard_task import ORDERS, HardTaskSpec, plan_item, synthesize_hard
from videop2r.data.records import read_records
from videop2r.rewards.judges.evidence import judge_facts

SPEC = HardTaskSpec(sft_clips=12, rl_clips=6, val_clips=4, test_clips=6, teacher_hard_accuracy=0.5)


def test_items_are_a_pure_function_of_seed_split_and_index() -> None:
    a = [plan_item(SPEC, 3, "rl", i) for i in range(20)]
    b = [plan_item(SPEC, 3, "rl", i) for i in range(20)]
    assert [(x.colour, x.order, x.hard) for x in a] == [(x.colour, x.order, x.hard) for x in b]
    assert np.array_equal(a[5].scene.render(2), b[5].scene.render(2))
    other = [plan_item(SPEC, 4, "rl", i) for i in range(20)]
    assert [(x.colour, x.hard) for x in a] != [(x.colour, x.hard) for x in other]


def test_hard_clips_are_small_and_low_contrast() -> None:
    items = [plan_item(SPEC, 0, "test", i) for i in range(40)]
    hard = [x for x in items if x.hard]
    easy = [x for x in items if not x.hard]
    assert hard and easy
    grey = np.array([128, 128, 128])

    def drawn(item):  # pixels that differ from the background, and how far they are from it
        frame = item.scene.render(0).astype(int)
        mask = np.any(frame != grey, axis=-1)
        return int(mask.sum()), float(np.abs(frame[mask] - grey).max())

    assert max(drawn(x)[0] for x in hard) < min(drawn(x)[0] for x in easy)
    assert max(drawn(x)[1] for x in hard) < 0.5 * min(drawn(x)[1] for x in easy)


def test_splits_records_and_the_teacher_filter(tmp_path) -> None:
    summary = synthesize_hard(tmp_path, SPEC, seed=0)
    info = summary.as_dict()["splits"]
    assert info["sft"]["records"] + info["sft"]["dropped_by_teacher"] == 12
    assert info["sft"]["dropped_by_teacher"] == sum(not plan_item(SPEC, 0, "sft", i).teacher_right for i in range(12))
    for split, count in (("rl", 6), ("val", 4), ("test", 6)):
        assert info[split]["records"] == count and info[split]["dropped_by_teacher"] == 0
    records, skipped = read_records(tmp_path / "rl.jsonl")
    assert not skipped
    for record in records:
        extra = record.model_dump()
        order = ORDERS[extra["option_order"]]
        colour = record.evidence[0].split(": ")[1]
        assert record.options[order.index(colour)].startswith(record.answer + ".")
        assert extra["difficulty"] in ("easy", "hard")
        assert (tmp_path / record.path).stat().st_size > 0
        # the reference observation is sufficient for the strict judge
        assert judge_facts(record.evidence, record.observation, record.problem)[0]
    assert len({r.answer for r in records}) > 1
    json.dumps(summary.as_dict())


def test_unknown_split_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown splits"):
        synthesize_hard(tmp_path, SPEC, clips={"train": 3})


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_the_second_option_order_is_the_configured_minority(fraction: float) -> None:
    spec = SPEC.model_copy(update={"second_order_fraction": fraction})
    orders = [plan_item(spec, 0, "rl", i).order for i in range(400)]
    share = sum(orders) / len(orders)
    assert share == fraction if fraction in (0.0, 1.0) else abs(share - fraction) < 0.06
