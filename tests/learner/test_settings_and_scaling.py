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
        "trainer.reference_path=/sft", "learner.threads=1", "algorithm.clip_ratio=0.3",
        "learner.gradient_checkpointing=true", "learner.max_tokens_per_micro_batch=4096",
    ])
    settings = LearnerSettings.from_config(config)
    assert (settings.lr, settings.mini_batch_size, settings.temperature) == (3e-4, 16, 0.7)
    assert (settings.model_path, settings.reference_path, settings.learner.threads) == ("/m", "/sft", 1)
    assert settings.learner == config.learner  # the workers get the section as is
    assert settings.learner.gradient_checkpointing and settings.learner.max_tokens_per_micro_batch == 4096
    assert settings.algorithm.clip_ratio == 0.3
    assert LearnerSettings.model_validate(settings.model_dump()) == settings  # survives the trip to a worker


def test_settings_built_without_the_tree_default_to_the_trees_values():
    """One source of truth: every default a setting has is the config tree's (never declared twice)."""
    tree = LearnerSettings.from_config(load_config(overrides=["model.path=/p"]))
    bare = LearnerSettings(model_path="/p")
    assert bare.model_dump(exclude={"learner", "storage", "algorithm"}) == tree.model_dump(
        exclude={"learner", "storage", "algorithm"})


def test_the_learner_renormalises_as_the_rollout_samples():
    # a rollout that may sample vision placeholders: the learner's log-probs must not drop them
    settings = LearnerSettings.from_config(load_config(overrides=["rollout.block_vision_tokens=false"]))
    assert settings.block_vision_tokens is False
    assert LearnerSettings.from_config(load_config()).block_vision_tokens is True


def test_old_trainer_keys_migrate_to_the_learner_section(caplog):
    config = load_config(overrides=["trainer.num_workers=4", "trainer.learner_threads=2",
                                    "trainer.learner_device=cpu"])
    assert (config.learner.num_workers, config.learner.threads, config.learner.device) == (4, 2, "cpu")
    assert not hasattr(config.trainer, "num_workers")  # one source of truth
    assert "trainer.num_workers is now learner.num_workers" in caplog.text
    from videop2r.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.num_workers moved to learner.num_workers; both are set"):
        load_config(overrides=["trainer.num_workers=4", "learner.num_workers=2"])


def test_reference_only_when_the_kl_term_is_on():
    assert LearnerSettings.from_config(load_config(overrides=["algorithm.kl_coef=0"])).reference_path == ""
    on = LearnerSettings.from_config(load_config(overrides=["model.path=/m", "algorithm.kl_coef=0.04"]))
    assert on.reference_path == "/m"
    assert LearnerSettings(model_path="/p").reference_path == "/p"  # default kl_coef 0.04 needs π_ref


def test_sft_settings_take_the_sft_optimiser_no_reference_and_the_rest_as_pa_grpo_does():
    config = load_config(overrides=[
        "model.path=/m", "algorithm.kl_coef=0.04", "trainer.reference_path=/ref", "trainer.lr=1e-6",
        "trainer.sft.lr=3e-5", "trainer.sft.lr_schedule=linear", "trainer.sft.warmup_steps=2", "trainer.sft.steps=7",
        "trainer.sft.weight_decay=0.1", "trainer.sft.batch_size=3", "trainer.sft.grad_accum=2",
        "trainer.ppo_epochs=2", "rollout.temperature=0.7", "learner.num_workers=2", "learner.max_prompt_tokens=99",
        "trainer.grad_clip=0.5", "trainer.seed=5"])
    sft, pa_grpo = LearnerSettings.for_sft(config), LearnerSettings.from_config(config)
    assert sft.reference_path == "" and sft.algorithm.kl_coef == 0  # no KL, so no π_ref loaded
    assert pa_grpo.reference_path == "/ref" and pa_grpo.algorithm.kl_coef == 0.04
    assert (sft.lr, sft.lr_schedule, sft.warmup_steps, sft.total_steps, sft.weight_decay) == \
        (3e-5, "linear", 2, 7, 0.1)
    # batch 3 × accumulation 2 on 2 workers: one optimizer step of 6 rows, micro-batches of 2 per worker
    assert (sft.mini_batch_size, sft.micro_batch_size, sft.ppo_epochs, sft.temperature) == (6, 2, 1, 1.0)
    shared = ("model_path", "dtype", "attn_implementation", "min_lr_ratio", "adam_betas", "grad_clip", "seed",
              "learner", "collective_timeout_s", "storage", "block_vision_tokens")
    assert {k: getattr(sft, k) for k in shared} == {k: getattr(pa_grpo, k) for k in shared}
    assert sft.learner == config.learner and sft.learner.max_prompt_tokens == 99
    assert sft.algorithm.model_dump() == {**config.algorithm.model_dump(), "kl_coef": 0.0}


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
