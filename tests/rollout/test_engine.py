"""The generation engine: log-probs the learner can reproduce, prefill once, stops, masks, batching."""

from __future__ import annotations

import torch

from services.rollout.prompt_job import PromptJob, SamplingOptions
from videop2r import prompting


def learner_logprobs(engine, inputs, response_ids, temperature=1.0):
    """What a learner computes: teacher-forced forward, log_softmax(logits / T), vision ids masked."""
    full = prompting.append_response(inputs, response_ids)
    with torch.no_grad():
        logits = engine.model(**full).logits[0].float()
    length = inputs["input_ids"].shape[1]
    scores = logits[length - 1:-1]
    scores[:, engine.blocked_ids] = float("-inf")
    scores = torch.log_softmax(scores / temperature, dim=-1)
    return scores.gather(1, torch.tensor(response_ids)[:, None])[:, 0]


def test_returned_logprobs_match_a_teacher_forced_forward(engine, video_prompt):
    inputs, _, _ = video_prompt
    (result,) = engine.generate([PromptJob(inputs, SamplingOptions(max_new_tokens=24, n=3, temperature=0.8,
                                                                  sampling_seed=0, ignore_eos=True))])
    assert len(result.samples) == 3 and result.prompt_tokens == inputs["input_ids"].shape[1]
    for sample in result.samples:
        assert len(sample.output_ids) == len(sample.logprobs) == 24
        expected = learner_logprobs(engine, inputs, sample.output_ids, temperature=0.8)
        assert torch.allclose(torch.tensor(sample.logprobs), expected, atol=1e-4), (sample.logprobs, expected)
    assert len({tuple(sample.output_ids) for sample in result.samples}) > 1  # n independent samples


def test_prefill_once_equals_the_naive_repeated_prompt(engine, video_prompt):
    inputs, _, _ = video_prompt
    job = PromptJob(inputs, SamplingOptions(max_new_tokens=12, n=4, sampling_seed=3, ignore_eos=True))
    (once,) = engine.generate([job], encode_once=True)
    (naive,) = engine.generate([job], encode_once=False)
    for a, b in zip(once.samples, naive.samples):
        assert a.output_ids == b.output_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_batched_prompts_of_different_lengths_equal_separate_runs(engine, video_prompt, text_prompt):
    inputs, _, _ = video_prompt
    jobs = [PromptJob(inputs, SamplingOptions(max_new_tokens=10, temperature=0.0, ignore_eos=True)),
            PromptJob(text_prompt, SamplingOptions(max_new_tokens=6, n=2, temperature=0.0, ignore_eos=True))]
    together = engine.generate(jobs)
    alone = [engine.generate([job])[0] for job in jobs]
    for joint, single in zip(together, alone):
        assert [s.output_ids for s in joint.samples] == [s.output_ids for s in single.samples]
        for a, b in zip(joint.samples, single.samples):
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
    assert [len(s.output_ids) for s in together[1].samples] == [6, 6]


def test_vision_placeholders_are_never_sampled_even_when_pushed(engine, text_prompt):
    push = {token: 50.0 for token in engine.blocked_ids}
    (result,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=16, n=4, logit_bias=push,
                                                                         ignore_eos=True))])
    for sample in result.samples:
        assert not set(sample.output_ids) & set(engine.blocked_ids)
    # while a pushed ordinary token dominates
    (forced,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=4, logit_bias={97: 100.0},
                                                                         ignore_eos=True))])
    assert forced.samples[0].output_ids == [97, 97, 97, 97]


def test_stop_token_eos_and_finish_reasons(engine, text_prompt):
    eos = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    (stopped,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=20, logit_bias={eos: 100.0}))])
    sample = stopped.samples[0]
    assert sample.output_ids == [eos] and sample.finish_reason == {"type": "stop", "matched": eos}
    assert sample.text == ""  # special token dropped from the text, kept in output_ids
    (by_id,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=20, stop_token_ids=[97],
                                                                      logit_bias={97: 100.0}))])
    assert by_id.samples[0].finish_reason == {"type": "stop", "matched": 97}
    (length,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=5, ignore_eos=True))])
    assert length.samples[0].finish_reason == {"type": "length", "length": 5}
    (nothing,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=0))])
    assert nothing.samples[0].output_ids == [] and nothing.samples[0].finish_reason["type"] == "length"


def test_min_new_tokens_holds_eos_back(engine, text_prompt):
    eos = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    (result,) = engine.generate([PromptJob(text_prompt, SamplingOptions(max_new_tokens=10, min_new_tokens=3,
                                                                         logit_bias={eos: 100.0}))])
    ids = result.samples[0].output_ids
    assert len(ids) == 4 and eos not in ids[:3] and ids[3] == eos


def test_stop_string_is_matched_and_trimmed(engine, text_prompt):
    tokenizer = engine.tokenizer
    answer = tokenizer.convert_tokens_to_ids("</answer>")
    (result,) = engine.generate([PromptJob(text_prompt, SamplingOptions(
        max_new_tokens=10, stop=["</answer>"], logit_bias={answer: 100.0}))])
    sample = result.samples[0]
    assert sample.finish_reason == {"type": "stop", "matched": "</answer>"}
    assert sample.output_ids == [answer] and sample.text == ""
    (kept,) = engine.generate([PromptJob(text_prompt, SamplingOptions(
        max_new_tokens=10, stop=["</answer>"], logit_bias={answer: 100.0}, no_stop_trim=True))])
    assert kept.samples[0].text == "</answer>"


def test_prompt_logprobs_on_request(engine, text_prompt):
    job = PromptJob(text_prompt, SamplingOptions(max_new_tokens=1), input_logprob_start=0)
    (result,) = engine.generate([job])
    ids = text_prompt["input_ids"][0].tolist()
    assert [token for _, token in result.input_logprobs] == ids
    assert result.input_logprobs[0][0] is None and all(value <= 0 for value, _ in result.input_logprobs[1:])


def test_image_prompts_generate_with_learner_matching_logprobs(engine):
    import numpy as np

    image = np.random.default_rng(1).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    inputs = prompting.build_inputs(engine.processor, {"problem": "What is written?", "problem_type": "OCR",
                                                      "data_type": "image"}, image)
    (result,) = engine.generate([PromptJob(inputs, SamplingOptions(max_new_tokens=8, n=2, ignore_eos=True,
                                                                   sampling_seed=4))])
    for sample in result.samples:
        expected = learner_logprobs(engine, inputs, sample.output_ids)
        assert torch.allclose(torch.tensor(sample.logprobs), expected, atol=1e-4)


def test_an_empty_job_list_is_a_no_op(engine):
    assert engine.generate([]) == []
