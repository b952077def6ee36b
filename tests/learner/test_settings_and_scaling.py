"""Learner settings from the config tree, LR schedules, and the micro-batch loss weighting."""

from __future__ import annotations

import pytest
import torch

from videop2r.config import load_config
from videop2r.learner.actor import micro_loss_weight
from videop2r.learner.schedule import build_lr_schedule
from videop2r.learner.settings import LearnerSettings


def test_settings_follow_the_config_tree():
    config = load_config(overrides=[
        "trainer.lr=3e-4", "trainer.mini_batch_size=16", "rollout.temperature=0.7", "model.path=/m",
        "trainer.reference_path=/sft", "trainer.learner_threads=1", "algorithm.clip_ratio=0.3",
    ])
    settings = LearnerSettings.from_config(config)
    assert (settings.lr, settings.mini_batch_size, settings.temperature) == (3e-4, 16, 0.7)
    assert (settings.model_path, settings.reference_path, settings.threads) == ("/m", "/sft", 1)
    assert settings.algorithm.clip_ratio == 0.3
    assert LearnerSettings.model_validate(settings.model_dump()) == settings  # survives the trip to a worker


def test_reference_only_when_the_kl_term_is_on():
    assert LearnerSettings.from_config(load_config(overrides=["algorithm.kl_coef=0"])).reference_path == ""
    on = LearnerSettings.from_config(load_config(overrides=["model.path=/m", "algorithm.kl_coef=0.04"]))
    assert on.reference_path == "/m"
    assert LearnerSettings(model_path="/p").reference_path == "/p"  # default kl_coef 0.04 needs π_ref


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="lr"):
        LearnerSettings(model_path="/p", lr=0)
    with pytest.raises(ValueError, match="unknown"):
        LearnerSettings(model_path="/p", unknown=1)


def _lrs(kind: str, warmup: int = 2, total: int = 10, min_ratio: float = 0.0) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = build_lr_schedule(optimizer, kind, warmup, total, min_ratio)
    values = []
    for _ in range(total):
        values.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return values


def test_schedules_warm_up_then_follow_their_shape():
    cosine, constant, linear = _lrs("cosine"), _lrs("constant"), _lrs("linear")
    for values in (cosine, constant, linear):
        assert values[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert constant[3:] == pytest.approx([1.0] * 7)
    for decaying in (cosine, linear):
        assert all(a > b for a, b in zip(decaying[2:], decaying[3:]))
    assert min(_lrs("cosine", warmup=0, total=10, min_ratio=0.1)) >= 0.1 - 1e-9
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        _lrs("step")


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_weighted_micro_losses_add_up_to_the_global_loss(mode):
    """Σ over workers and micro-batches of weight·(local loss), averaged over workers as FSDP
    averages gradients, equals the loss of the whole global mini-batch — for any split."""
    torch.manual_seed(0)
    world, rows, width = 2, 6, 5
    losses = torch.rand(world * rows, width)
    mask = (torch.rand(world * rows, width) > 0.4).long()
    mask[3] = 0  # a row without response tokens (e.g. padding)

    def aggregate(values: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        m = m.float()
        if mode == "token-mean":
            return (values * m).sum() / m.sum().clamp(min=1)
        per_seq = (values * m).sum(-1)
        if mode == "seq-mean-token-mean":
            per_seq = per_seq / m.sum(-1).clamp(min=1)
        has = m.sum(-1) > 0
        return per_seq[has].sum() / has.sum()

    tokens, seqs = float(mask.sum()), float((mask.sum(-1) > 0).sum())
    total = 0.0
    for worker in range(world):
        share = slice(worker * rows, (worker + 1) * rows)
        for micro in (slice(0, 1), slice(1, 4), slice(4, 6)):  # uneven micro-batches
            local_losses, local_mask = losses[share][micro], mask[share][micro]
            weight = micro_loss_weight(mode, local_mask, tokens, seqs, world)
            total += weight * float(aggregate(local_losses, local_mask))
    assert total / world == pytest.approx(float(aggregate(losses, mask)), rel=1e-6)
