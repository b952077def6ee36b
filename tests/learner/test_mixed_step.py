"""A step whose rows mix video, image and text-only prompts trains on 2 FSDP2 workers (gloo).

Two learner groups see the same batch: A loads on rank 0 (meta device + broadcast), with
activation checkpointing and a token budget small enough that its workers run different numbers
of micro-batches; B loads on every rank, no checkpointing, two rows per micro-batch. The batch is
ordered so that one worker gets only video rows and the other image and text-only rows (verl
splits in order). Both must give the log-probs a plain single-row forward gives, and the same
update: rank-0 loading, checkpointing and the token budget change memory, not the step.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from videop2r.config import AlgorithmConfig, LearnerConfig
from videop2r.learner.batch import RolloutSample, build_batch
from videop2r.learner.group import Learner
from videop2r.learner.logprob import response_log_probs
from videop2r.learner.micro import micro_cost, row_shapes
from videop2r.learner.rows import Rows
from videop2r.learner.settings import LearnerSettings

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a local Ray cluster

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
IMAGE_KEYS = ("pixel_values", "image_grid_thw")
QUESTION = {"problem": "What colour is the shape?", "options": ["red", "blue"], "problem_type": "multiple choice"}


def _rows(processor, blocked: set[int]) -> list[RolloutSample]:
    from videop2r.prompting import build_inputs

    rng = np.random.default_rng(3)
    vocab = [i for i in range(len(processor.tokenizer)) if i not in blocked]

    def response(n: int) -> list[int]:
        return [int(t) for t in rng.choice(vocab, n)]

    video = build_inputs(processor, {**QUESTION, "data_type": "video"},
                         media=rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8), fps=2.0)
    image = build_inputs(processor, {**QUESTION, "data_type": "image"},
                         media=rng.integers(0, 256, (84, 56, 3), dtype=np.uint8))
    text_ids = processor.tokenizer("a question without any picture, answer B")["input_ids"]
    rows = []
    for index, length in enumerate((30, 5)):  # worker 0: the video rows
        rows.append(RolloutSample(video["input_ids"][0], response(length), {k: video[k] for k in VIDEO_KEYS},
                                  uid=f"v{index}"))
    rows.append(RolloutSample(image["input_ids"][0], response(7), {k: image[k] for k in IMAGE_KEYS}, uid="i0"))
    rows.append(RolloutSample(text_ids, response(11), {}, uid="t0"))  # worker 1: image + text-only
    return rows


def _with_advantages(batch):
    batch = copy.deepcopy(batch)
    mask = batch.batch["response_mask"]
    half = (torch.arange(mask.shape[1])[None] < mask.sum(-1, keepdim=True) // 2).long() * mask
    batch.batch["perception_mask"], batch.batch["reasoning_mask"] = half.float(), (mask - half).float()
    batch.batch["advantages"] = torch.tensor([[1.0], [-1.0], [0.5], [-0.5]]) * mask
    return batch


@pytest.fixture(scope="module")
def story(local_ray, tiny_dir, processor, tmp_path_factory):
    from videop2r.model import vision_token_ids

    blocked = set(vision_token_ids(processor.tokenizer))
    batch = build_batch(_rows(processor, blocked), pad_token_id=int(processor.tokenizer.pad_token_id))
    # a budget that fits one worker's two rows in one micro-batch but not the other's: 1 vs 2 micro-steps
    shapes = row_shapes(Rows.of(batch))
    pairs = micro_cost(shapes[:2]), micro_cost(shapes[2:])
    budget = max(min(pairs), max(micro_cost([shape]) for shape in shapes))
    assert budget < max(pairs)
    base = dict(model_path=str(tiny_dir), lr=1e-3, lr_schedule="constant", mini_batch_size=4, seed=0,
                algorithm=AlgorithmConfig(kl_coef=0.04, loss_agg_mode="seq-mean-process-mean"))
    variants = {
        "a": LearnerSettings(**base, micro_batch_size=4, learner=LearnerConfig(
            threads=1, device="cpu", load="rank0", gradient_checkpointing=True, max_tokens_per_micro_batch=budget)),
        "b": LearnerSettings(**base, micro_batch_size=2, learner=LearnerConfig(
            threads=1, device="cpu", load="every_rank", reference_dtype="float32")),
    }
    root = tmp_path_factory.mktemp("mixed")
    out = {"batch": batch}
    for name, settings in variants.items():
        learner = Learner(settings, num_workers=2, failure_grace_s=5)
        try:
            out[f"{name}_old"] = learner.compute_log_prob(batch).batch["old_log_probs"]
            out[f"{name}_ref"] = learner.compute_ref_log_prob(batch).batch["ref_log_prob"]
            train = _with_advantages(batch)
            train.batch["ref_log_prob"] = out[f"{name}_ref"]
            out[f"{name}_metrics"] = learner.update_policy(train)  # no old_log_probs: one update per batch
            out[f"{name}_after"] = learner.compute_log_prob(batch).batch["old_log_probs"]
            learner.export_weights(str(root / name), version=1)
        finally:
            learner.shutdown()
    out["root"] = root
    return out


def test_mixed_rows_match_a_plain_single_row_forward(story, tiny_dir, processor):
    from videop2r.model import load_model, vision_token_ids

    model = load_model(tiny_dir, device="cpu")
    blocked = vision_token_ids(processor.tokenizer)
    with torch.no_grad():
        alone = torch.cat([response_log_probs(model, story["batch"].select_idxs([row]), 1.0, False, "cpu",
                                              blocked)[0] for row in range(len(story["batch"]))])
    for name in ("a", "b"):
        assert torch.allclose(story[f"{name}_old"], alone, atol=1e-4), (name, (story[f"{name}_old"] - alone).abs().max())
    # π_ref in bf16 (A, the default) is close to the fp32 policy; in fp32 (B) it is the policy
    assert torch.allclose(story["b_ref"], alone, atol=1e-4)
    assert torch.allclose(story["a_ref"], alone, atol=0.1) and not torch.equal(story["a_ref"], alone)


def test_rank0_loading_checkpointing_and_token_budget_do_not_change_the_step(story):
    a, b = story["a_metrics"], story["b_metrics"]
    assert a["actor/step"] == b["actor/step"] == 1
    assert a["actor/pg_loss"] == pytest.approx(b["actor/pg_loss"], abs=1e-5)
    assert a["actor/grad_norm"] == pytest.approx(b["actor/grad_norm"], rel=1e-2)  # KL: bf16 vs fp32 π_ref
    # the update moved the policy, the same way in both groups
    assert not torch.allclose(story["a_after"], story["a_old"], atol=1e-3)
    assert torch.allclose(story["a_after"], story["b_after"], atol=2e-3), (story["a_after"] - story["b_after"]).abs().max()
