"""Samples → learner batches: the SFT target is the reference output, on the prompt the rollout sees."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from videop2r.data.records import VideoR1Record
from videop2r.prompting import build_inputs
from videop2r.train.batches import NoReferenceOutput, reference_output, sft_batch, sft_rows

RECORD = VideoR1Record(
    problem_id="p1", problem="What colour is the moving shape?", options=["A. red", "B. green"],
    solution="<answer>B</answer>", path="v.mp4", data_type="video", problem_type="multiple choice",
    output="<observation>I see green.</observation><think>Green is B.</think><answer>B</answer>",
)


@pytest.fixture(scope="module")
def processor(assets):
    from videop2r.model import load_processor

    return load_processor(assets["model"])


def _sample(record=RECORD, seed=0):
    frames = np.random.default_rng(seed).integers(0, 255, (8, 84, 84, 3), dtype=np.uint8)
    return SimpleNamespace(record=record, video=SimpleNamespace(frames=frames, sample_fps=2.0))


def test_sft_row_is_prompt_then_reference_then_end_of_turn(processor):
    sample = _sample()
    (row,) = sft_rows(processor, [sample])
    inputs = build_inputs(processor, sample)
    assert list(row.prompt_ids) == inputs["input_ids"][0].tolist()
    assert torch.equal(row.multi_modal_inputs["pixel_values_videos"], inputs["pixel_values_videos"])
    tokenizer = processor.tokenizer
    assert tokenizer.decode(list(row.response_ids)) == RECORD.output + "<|im_end|>"


def test_sft_batch_masks_only_assistant_tokens(processor):
    short = RECORD.model_copy(update={"output": "<observation>g</observation><think>B</think><answer>B</answer>"})
    batch = sft_batch(processor, [_sample(), _sample(short, seed=1)])
    mask = batch.batch["response_mask"]
    lengths = mask.sum(-1).tolist()
    assert lengths[0] > lengths[1] > 0
    assert batch.batch["advantages"].shape == mask.shape and not batch.batch["advantages"].any()
    assert batch.batch["input_ids"].shape[1] == batch.batch["prompts"].shape[1] + mask.shape[1]


def test_reference_output_from_parts_or_a_clear_error():
    parts = RECORD.model_copy(update={"output": None, "observation": "I see green.", "process": "Green is B."})
    assert reference_output(parts) == "<observation>I see green.</observation><think>Green is B.</think><answer>B</answer>"
    with pytest.raises(NoReferenceOutput, match="p1"):
        reference_output(RECORD.model_copy(update={"output": None}))
