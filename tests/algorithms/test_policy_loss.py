"""PA-GRPO loss: clipped surrogate per process + k3 KL, against hand values and verl's vanilla loss."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from videop2r.algorithms import compute_process_advantages, pa_grpo_policy_loss
from videop2r.config import AlgorithmConfig


def config(**changes) -> AlgorithmConfig:
    return AlgorithmConfig(**{"kl_coef": 0.0, **changes})


def tokens(*values: float) -> torch.Tensor:
    return torch.tensor([list(values)])


@pytest.mark.parametrize(
    ("advantage", "ratio", "loss", "clipped"),
    [
        (1.0, 1.5, -1.2, 1.0),  # gain capped at 1 + ε
        (1.0, 0.9, -0.9, 0.0),
        (-1.0, 0.5, 0.8, 1.0),  # a negative advantage cannot be escaped below 1 − ε
        (-1.0, 1.5, 1.5, 0.0),  # … and is not capped above
        (0.0, 3.0, 0.0, 0.0),
    ],
)
def test_clipped_surrogate_on_one_token(advantage, ratio, loss, clipped) -> None:
    result, metrics = pa_grpo_policy_loss(
        tokens(0.0), tokens(math.log(ratio)), tokens(advantage), tokens(1.0), None, config()
    )
    assert float(result) == pytest.approx(loss)
    assert metrics["actor/pg_clipfrac"] == clipped


def test_token_mean_and_k3_kl() -> None:
    old = tokens(0.0, 0.0)
    new = tokens(math.log(1.5), math.log(1.5))
    advantages = tokens(1.0, -1.0)
    ref = tokens(-1.0, -1.0)  # k3 at log π − log π_ref = log 1.5 + 1: e^{−x} + x − 1
    x = math.log(1.5) + 1
    k3 = math.exp(-x) + x - 1
    loss, metrics = pa_grpo_policy_loss(old, new, advantages, tokens(1.0, 1.0), ref, config(kl_coef=0.04))
    assert float(loss) == pytest.approx((-1.2 + 1.5) / 2 + 0.04 * k3)
    assert metrics["actor/kl"] == pytest.approx(k3)
    assert metrics["actor/pg_loss"] == pytest.approx(0.15)


def test_sequence_mean_modes() -> None:
    new = torch.zeros(2, 3)
    advantages = torch.tensor([[1.0, 1.0, 1.0], [-2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # per-token losses: row 0 → −1, −1, −1; row 1 → 2
    token_mean, _ = pa_grpo_policy_loss(new, new, advantages, mask, None, config(loss_agg_mode="token-mean"))
    seq_token_mean, _ = pa_grpo_policy_loss(new, new, advantages, mask, None, config(loss_agg_mode="seq-mean-token-mean"))
    seq_token_sum, _ = pa_grpo_policy_loss(new, new, advantages, mask, None, config(loss_agg_mode="seq-mean-token-sum"))
    assert float(token_mean) == pytest.approx((-3 + 2) / 4)
    assert float(seq_token_mean) == pytest.approx((-1 + 2) / 2)
    assert float(seq_token_sum) == pytest.approx((-3 + 2) / 2)


def test_equals_verls_vanilla_loss_plus_kl_when_the_dual_clip_is_idle() -> None:
    from verl.trainer.ppo.core_algos import agg_loss, compute_policy_loss_vanilla, kl_penalty

    torch.manual_seed(0)
    old = torch.randn(6, 10) * 0.1 - 2
    new = old + torch.randn(6, 10) * 0.3  # ratios well below verl's dual-clip bound of 3
    ref = old + torch.randn(6, 10) * 0.2
    advantages = torch.randn(6, 10)
    mask = (torch.rand(6, 10) > 0.2).float()
    verl_config = OmegaConf.create(
        {"clip_ratio": 0.2, "clip_ratio_low": None, "clip_ratio_high": None, "clip_ratio_c": 3.0,
         "global_batch_info": {}}
    )
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
        theirs, _ = compute_policy_loss_vanilla(old, new, advantages, mask, mode, verl_config)
        theirs = theirs + 0.04 * agg_loss(kl_penalty(new, ref, "low_var_kl"), mask, mode)
        ours, _ = pa_grpo_policy_loss(old, new, advantages, mask, ref, config(kl_coef=0.04, loss_agg_mode=mode))
        assert float(ours) == pytest.approx(float(theirs), rel=1e-6), mode


def test_loss_splits_into_the_two_processes() -> None:
    """Disjoint per-token advantages realise Σ_k of a clipped surrogate per process."""
    torch.manual_seed(1)
    perception = torch.zeros(4, 8)
    perception[:, :3] = 1
    reasoning = torch.zeros(4, 8)
    reasoning[:, 3:7] = 1
    response = torch.ones(4, 8)
    result = compute_process_advantages(
        "pa_grpo", torch.tensor([1.0, 0.0, 2.0, 1.0]), torch.tensor([0.0, 1.0, 1.0, 2.2]), response,
        ["a", "a", "b", "b"], perception_mask=perception, reasoning_mask=reasoning,
    )
    old = torch.randn(4, 8)
    new = old + torch.randn(4, 8) * 0.5
    cfg = config(loss_agg_mode="token-sum")
    whole, metrics = pa_grpo_policy_loss(old, new, result.advantages, response, None, cfg,
                                         perception_mask=perception, reasoning_mask=reasoning)
    p_only, _ = pa_grpo_policy_loss(old, new, result.advantages * perception, response, None, cfg)
    r_only, _ = pa_grpo_policy_loss(old, new, result.advantages * reasoning, response, None, cfg)
    assert float(whole) == pytest.approx(float(p_only) + float(r_only), rel=1e-6)
    assert {"actor/pg_clipfrac/perception", "actor/pg_clipfrac/reasoning"} <= set(metrics)


def test_gradient_reaches_only_unclipped_tokens_with_advantage() -> None:
    old = torch.zeros(1, 4)
    new = torch.tensor([[0.0, math.log(1.5), 0.0, 0.0]], requires_grad=True)
    advantages = tokens(1.0, 1.0, 0.0, -1.0)
    loss, _ = pa_grpo_policy_loss(old, new, advantages, torch.ones(1, 4), None, config())
    loss.backward()
    grad = new.grad[0].tolist()
    assert grad[0] == pytest.approx(-0.25) and grad[3] == pytest.approx(0.25)  # ∂(−ρA)/∂logπ / 4 tokens
    assert grad[1] == 0.0 and grad[2] == 0.0  # clipped; zero advantage


def test_empty_mask_gives_zero_loss_that_backpropagates() -> None:
    new = torch.zeros(2, 3, requires_grad=True)
    loss, metrics = pa_grpo_policy_loss(torch.zeros(2, 3), new, torch.ones(2, 3), torch.zeros(2, 3),
                                        torch.zeros(2, 3), config(kl_coef=0.04))
    loss.backward()
    assert float(loss.detach()) == 0.0 and metrics["actor/pg_loss"] == 0.0


def test_kl_needs_a_reference() -> None:
    with pytest.raises(ValueError, match="ref_log_prob"):
        pa_grpo_policy_loss(tokens(0.0), tokens(0.0), tokens(1.0), tokens(1.0), None, config(kl_coef=0.1))


def test_mapping_config_is_accepted() -> None:
    mapping = {"clip_ratio": 0.2, "kl_coef": 0.0, "kl_estimator": "k3", "loss_agg_mode": "token-mean"}
    loss, _ = pa_grpo_policy_loss(tokens(0.0), tokens(math.log(1.5)), tokens(1.0), tokens(1.0), None, mapping)
    assert float(loss) == pytest.approx(-1.2)
