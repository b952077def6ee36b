"""Teacher-forced log-probs of the learner (one process, unsharded) against the rollout engine."""

from __future__ import annotations

import pytest
import torch

from videop2r.learner.batch import build_batch
from videop2r.learner.logprob import response_log_probs


@pytest.fixture(scope="module")
def rollout_batch(make_rollouts, processor):
    samples = make_rollouts(prompts=3, n=2, max_new_tokens=10)
    return build_batch(samples, pad_token_id=processor.tokenizer.pad_token_id)


def test_padded_batch_matches_the_rollout_engine(engine, rollout_batch):
    blocked = engine.blocked_ids
    with torch.no_grad():
        log_probs, entropy = response_log_probs(engine.model, rollout_batch, 1.0, True, "cpu", blocked)
    mask = rollout_batch.batch["response_mask"].bool()
    expected = rollout_batch.batch["rollout_log_probs"]
    assert mask.sum(1).unique().numel() > 1, "responses of different lengths exercise the right padding"
    assert (rollout_batch.batch["attention_mask"][:, 0] == 0).any(), "prompts of different lengths"
    assert torch.allclose(log_probs[mask], expected[mask], atol=1e-4), (log_probs - expected).abs().max()
    assert (log_probs[~mask] == 0).all() and (entropy[~mask] == 0).all()
    assert (entropy[mask] > 0).all()


def test_blocked_tokens_are_renormalised_away(engine, rollout_batch):
    with torch.no_grad():
        plain, _ = response_log_probs(engine.model, rollout_batch, 1.0, False, "cpu")
        blocked, _ = response_log_probs(engine.model, rollout_batch, 1.0, False, "cpu", engine.blocked_ids)
    mask = rollout_batch.batch["response_mask"].bool()
    # removing tokens from the support can only raise the others' probability
    assert (blocked[mask] > plain[mask]).all()


def test_temperature_scales_the_logits(engine, rollout_batch):
    with torch.no_grad():
        cold, _ = response_log_probs(engine.model, rollout_batch, 0.5, False, "cpu")
        warm, _ = response_log_probs(engine.model, rollout_batch, 1.0, False, "cpu")
    mask = rollout_batch.batch["response_mask"].bool()
    assert not torch.allclose(cold[mask], warm[mask])


def test_one_row_alone_equals_the_same_row_in_the_batch(engine, rollout_batch):
    with torch.no_grad():
        together, _ = response_log_probs(engine.model, rollout_batch, 1.0, False)
        alone, _ = response_log_probs(engine.model, rollout_batch.select_idxs([3]), 1.0, False)
    width = int(rollout_batch.batch["response_mask"][3].sum())
    assert torch.allclose(together[3, :width], alone[0, :width], atol=1e-5)


def test_gradients_flow_to_the_weights(engine, rollout_batch):
    model = engine.model
    try:
        log_probs, _ = response_log_probs(model, rollout_batch.select_idxs([0, 1]), 1.0)
        log_probs.sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)
        assert model.model.visual.blocks[0].mlp.down_proj.weight.grad is not None  # through the vision tower
    finally:
        model.zero_grad(set_to_none=True)
