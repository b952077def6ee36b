"""The method §1 prompt and the model inputs: one template, declared fps, rollout == learner inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videop2r import prompting
from videop2r.prompting import PromptError
from videop2r.rollout.media import decode_video_bytes, encode_video_bytes

MC = {"problem": "What colour is the square?", "options": ["A. red", "B. green", "C. blue", "D. yellow"],
      "problem_type": "multiple choice", "data_type": "video"}


def test_user_prompt_has_question_options_three_parts_and_the_type_hint():
    text = prompting.user_prompt(MC["problem"], MC["options"], MC["problem_type"], "video")
    assert text.startswith("What colour is the square?\nOptions:\nA. red\nB. green\nC. blue\nD. yellow\n")
    positions = [text.index(tag) for tag in ("<observation>", "<think>", "<answer>")]
    assert positions == sorted(positions)
    assert "Based on the question, I need to notice" in text and "do not stop after the first" in text
    assert text.rstrip().endswith(prompting.answer_hint("multiple choice"))
    assert "video" in text and "image" not in text


@pytest.mark.parametrize("problem_type", ["multiple choice", "numerical", "OCR", "free-form", "regression"])
def test_every_problem_type_has_its_own_hint(problem_type):
    hint = prompting.answer_hint(problem_type)
    assert "<answer>" in hint
    assert prompting.user_prompt("Q?", None, problem_type).rstrip().endswith(hint)
    others = {prompting.answer_hint(t) for t in ("multiple choice", "numerical", "OCR", "free-form")} - {hint}
    assert hint not in others


def test_options_without_letters_get_letters_and_bad_inputs_are_prompt_errors():
    assert prompting.format_question("Q?", ["red", "green"]) == "Q?\nOptions:\nA. red\nB. green"
    with pytest.raises(PromptError, match="problem_type"):
        prompting.user_prompt("Q?", None, "essay")
    with pytest.raises(PromptError, match="modality"):
        prompting.user_prompt("Q?", None, "OCR", "audio")
    with pytest.raises(PromptError, match="problem"):
        prompting.prompt_fields({"problem": " ", "problem_type": "OCR"})


def test_build_inputs_equals_the_processor_on_the_rendered_chat(processor, clip):
    inputs = prompting.build_inputs(processor, MC, clip, fps=2.0)
    text = processor.apply_chat_template(
        prompting.chat_messages(prompting.user_prompt(MC["problem"], MC["options"], MC["problem_type"]), "video"),
        tokenize=False, add_generation_prompt=True)
    reference = processor(text=[text], videos=[clip], do_resize=False, return_tensors="pt",
                          video_metadata=[{"total_num_frames": 8, "fps": 2.0, "frames_indices": list(range(8))}])
    for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw"):
        assert torch.equal(inputs[key], reference[key]), key
    assert torch.equal(inputs["mm_token_type_ids"].long(), reference["mm_token_type_ids"].long())
    assert inputs["second_per_grid_ts"].tolist() == [1.0]
    assert text.endswith("<|im_start|>assistant\n")
    # 8 frames of 84x84 -> grid (4, 6, 6) -> 144 patches -> 36 video tokens
    assert inputs["video_grid_thw"].tolist() == [[4, 6, 6]]
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == 36


def _video_temporal_positions(model, inputs, processor):
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"], attention_mask=inputs["attention_mask"])
    video = inputs["input_ids"][0] == processor.video_token_id
    return positions[0, 0, video]


def test_sampled_fps_gives_distinct_temporal_positions(model, processor, clip):
    inputs = prompting.build_inputs(processor, MC, clip, fps=2.0)
    temporal = _video_temporal_positions(model, inputs, processor).unique()
    assert len(temporal) == 4  # one per temporal grid
    # the trap: declaring the container fps collapses every video token onto one position
    collapsed = dict(inputs)
    collapsed["second_per_grid_ts"] = torch.tensor([2 / 24])
    assert len(_video_temporal_positions(model, collapsed, processor).unique()) == 1


@pytest.mark.parametrize("sample_fps", [4.0, 8.0, 24.0])
def test_fast_sampling_is_declared_at_most_temporal_patch_fps(model, processor, clip, sample_fps):
    inputs = prompting.build_inputs(processor, MC, clip, fps=sample_fps)
    assert inputs["second_per_grid_ts"].tolist() == [1.0]
    assert len(_video_temporal_positions(model, inputs, processor).unique()) == 4
    assert prompting.declared_fps(1.0) == 1.0


def test_rollout_wire_rebuilds_the_learners_ids_and_pixels_exactly(processor, clip):
    """What the client sends (a lossless video of the exact frames) decodes on the server to the same tensors."""
    learner = prompting.build_inputs(processor, MC, clip, fps=2.0)
    frames, fps = decode_video_bytes(encode_video_bytes(clip, 2.0))
    server = prompting.encode_prompt(processor, learner["input_ids"][0].tolist(), videos=[(frames, fps)])
    assert set(server.keys()) == set(learner.keys())
    for key in learner:
        assert torch.equal(server[key], learner[key]), key


def test_unexpanded_prompt_text_and_ids_expand_to_the_same_inputs(processor, clip):
    text = processor.apply_chat_template(prompting.chat_messages("hi", "video"), tokenize=False,
                                         add_generation_prompt=True)
    from_text = prompting.encode_prompt(processor, text, videos=[(clip, 2.0)])
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    from_ids = prompting.encode_prompt(processor, ids, videos=[(clip, 2.0)])
    assert torch.equal(from_text["input_ids"], from_ids["input_ids"])
    assert int((from_ids["input_ids"] == processor.video_token_id).sum()) == 36
    with pytest.raises(PromptError, match="pad"):
        prompting.encode_prompt(processor, ids[:3] + ids[3:], videos=[(clip, 2.0), (clip, 2.0)])
    with pytest.raises(PromptError, match="pad"):
        prompting.encode_prompt(processor, "no placeholder here", videos=[(clip, 2.0)])


def test_image_records_and_sample_objects(processor):
    image = np.random.default_rng(0).integers(0, 255, (56, 84, 3), dtype=np.uint8)

    class Sample:  # the shape of videop2r.data.stream.Sample
        record = {"problem": "What is written?", "problem_type": "OCR", "data_type": "image"}
        video = None

    Sample.image = image
    inputs = prompting.build_inputs(processor, Sample())
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 6]]
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 6
    assert int((inputs["mm_token_type_ids"] == 1).sum()) == 6
    assert "pixel_values_videos" not in inputs
    with pytest.raises(PromptError, match="media"):
        prompting.build_inputs(processor, {"problem": "Q", "problem_type": "OCR", "data_type": "video"})


def test_video_r1_record_objects_are_accepted(processor, clip):
    records = pytest.importorskip("videop2r.data.records")
    record = records.VideoR1Record(problem_id=1, path="a.mp4", solution="<answer>A</answer>", **MC)

    class Clip:
        frames = clip
        sample_fps = 2.0

    from_object = prompting.build_inputs(processor, record, Clip())
    from_dict = prompting.build_inputs(processor, MC, clip, fps=2.0)
    assert torch.equal(from_object["input_ids"], from_dict["input_ids"])


def test_append_response_scores_the_response_tokens(model, processor, clip):
    inputs = prompting.build_inputs(processor, MC, clip, fps=2.0)
    response = processor.tokenizer.encode("<observation>red</observation><answer>A</answer><|im_end|>",
                                          add_special_tokens=False)
    full = prompting.append_response(inputs, response)
    length = inputs["input_ids"].shape[1]
    assert full["input_ids"].shape[1] == length + len(response)
    assert full["input_ids"][0, length:].tolist() == response
    assert int(full["mm_token_type_ids"][0, length:].abs().sum()) == 0
    with torch.no_grad():
        logits = model(**full).logits
    assert logits.shape[:2] == (1, length + len(response))
    assert torch.isfinite(logits).all()
