"""Group-relative advantages per process against hand-computed values (method §4, §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videop2r.algorithms import compute_process_advantages, group_normalise, stack_process_masks

SQRT_HALF = math.sqrt(0.5)


def test_pair_with_different_scores() -> None:
    # mean 0.5, unbiased std sqrt(0.5) → ±0.5 / 0.7071 = ±0.7071
    result = group_normalise(torch.tensor([1.0, 0.0]), ["g", "g"], eps=0.0)
    assert result.advantage.tolist() == pytest.approx([SQRT_HALF, -SQRT_HALF])
    assert result.collapse_fraction == 0.0


def test_ties_inside_a_group() -> None:
    # [1, 1, 0, 0]: mean 0.5, unbiased std sqrt(1/3) → ±0.5·sqrt(3) = ±0.8660
    result = group_normalise(torch.tensor([1.0, 1.0, 0.0, 0.0]), [0, 0, 0, 0], eps=0.0)
    assert result.advantage.tolist() == pytest.approx([0.8660254, 0.8660254, -0.8660254, -0.8660254])
    # [2.2, 1, 1, 1]: mean 1.3, deviations 0.9, −0.3 ×3, unbiased var (0.81 + 3·0.09) / 3 = 0.36 → std 0.6
    result = group_normalise(torch.tensor([2.2, 1.0, 1.0, 1.0]), [0] * 4, eps=0.0)
    assert result.advantage.tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5])


def test_eps_is_added_to_the_std() -> None:
    result = group_normalise(torch.tensor([1.0, 0.0]), [0, 0], eps=0.1)
    assert result.advantage.tolist() == pytest.approx([0.5 / (SQRT_HALF + 0.1), -0.5 / (SQRT_HALF + 0.1)])


def test_all_equal_groups_and_single_rollouts_give_zero_and_are_counted() -> None:
    # groups: a = [0.1, 0.1, 0.1] (equal; a float std would be ~1e-17, not 0), b = [5] (G = 1), c = [1, 0]
    scores = torch.tensor([0.1, 0.1, 0.1, 5.0, 1.0, 0.0])
    result = group_normalise(scores, ["a", "a", "a", "b", "c", "c"])
    assert result.advantage[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert result.advantage[4:].tolist() == pytest.approx([SQRT_HALF, -SQRT_HALF], rel=1e-5)
    assert result.collapsed.tolist() == [True, True, True, True, False, False]
    assert result.collapse_fraction == pytest.approx(2 / 3)


def test_centre_only_when_not_scaling_by_std() -> None:
    result = group_normalise(torch.tensor([3.0, 1.0, 2.0]), [0, 0, 0], scale_by_std=False)
    assert result.advantage.tolist() == pytest.approx([1.0, -1.0, 0.0])


def batch():
    """Two groups of two rollouts, response length 6: tokens 0-2 perception, 3-4 reasoning, 5 trailing;
    the last rollout is padded after token 3."""
    response = torch.ones(4, 6)
    response[3, 4:] = 0
    perception = torch.zeros(4, 6)
    perception[:, :3] = 1
    reasoning = torch.zeros(4, 6)
    reasoning[:, 3:5] = 1
    reasoning[3, 4] = 0  # padding is in no process
    return {
        "perception_scores": torch.tensor([2.2, 1.0, 1.0, 1.0]),
        "reasoning_scores": torch.tensor([2.0, 1.0, 0.0, 2.0]),
        "response_mask": response,
        "index": np.array(["p0", "p0", "p1", "p1"], dtype=object),
        "perception_mask": perception,
        "reasoning_mask": reasoning,
    }


def test_pa_grpo_puts_each_advantage_on_its_own_tokens() -> None:
    result = compute_process_advantages("pa_grpo", **batch(), eps=0.0)
    a = SQRT_HALF
    expected = torch.tensor([
        [a, a, a, a, a, 0],
        [-a, -a, -a, -a, -a, 0],
        [0, 0, 0, -a, -a, 0],  # group p1 has equal perception scores: zero perception advantage
        [0, 0, 0, a, 0, 0],  # padding stays 0
    ])
    assert torch.allclose(result.advantages, expected, atol=1e-6)
    assert result.collapse_fraction == {"perception": 0.5, "reasoning": 0.0}
    assert result.metrics["advantage/collapse_fraction/perception"] == 0.5
    assert result.metrics["advantage/abs_mean/perception"] == pytest.approx(a / 2, rel=1e-6)


def test_no_separation_puts_the_sum_on_every_response_token() -> None:
    result = compute_process_advantages("pa_grpo_no_separation", **batch(), eps=0.0)
    a = SQRT_HALF
    per_rollout = [2 * a, -2 * a, -a, a]
    expected = torch.tensor(per_rollout)[:, None] * batch()["response_mask"]
    assert torch.allclose(result.advantages, expected, atol=1e-6)


def test_grpo_normalises_the_summed_reward_once() -> None:
    result = compute_process_advantages("grpo", **batch(), eps=0.0)
    # totals: p0 = [4.2, 2.0] → ±a; p1 = [1.0, 3.0] → ∓a
    a = SQRT_HALF
    expected = torch.tensor([a, -a, -a, a])[:, None] * batch()["response_mask"]
    assert torch.allclose(result.advantages, expected, atol=1e-6)
    assert result.collapse_fraction == {"total": 0.0}


def test_grpo_matches_verls_grpo_when_groups_have_spread() -> None:
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    torch.manual_seed(0)
    scores = torch.rand(12)
    index = np.array([i // 4 for i in range(12)])
    response = torch.ones(12, 5)
    token_level = torch.zeros(12, 5)
    token_level[:, -1] = scores
    theirs, _ = compute_grpo_outcome_advantage(token_level, response, index, epsilon=1e-6)
    ours = compute_process_advantages("grpo", scores, torch.zeros(12), response, index, eps=1e-6)
    assert torch.allclose(ours.advantages, theirs, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"perception_mask": None}, "needs perception_mask"),
        ({"reasoning_mask": torch.ones(4, 6)}, "overlap"),
        ({"perception_scores": torch.ones(3)}, "one score per rollout"),
        ({"perception_mask": torch.ones(4, 5)}, "expected"),
        ({"index": ["a", "b"]}, "index has 2 entries"),
        ({"reasoning_scores": torch.tensor([1.0, float("nan"), 0.0, 0.0])}, "finite"),
    ],
)
def test_bad_inputs_are_clear_errors(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_process_advantages("pa_grpo", **{**batch(), **change})


def test_unknown_estimator() -> None:
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        compute_process_advantages("ppo", **batch())


def test_stack_process_masks_pads_and_cuts() -> None:
    perception, reasoning = stack_process_masks(
        [([True, True, False], [False, False, True]), ([1, 0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 0, 0, 0])], 5
    )
    assert perception.tolist() == [[1, 1, 0, 0, 0], [1, 0, 0, 0, 1]]
    assert reasoning.tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0]]


GROUPS = st.lists(
    st.lists(st.sampled_from([0.0, 1.0, 1.2, 2.0, 2.2, 3.2, 0.5]), min_size=1, max_size=8), min_size=1, max_size=6
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GROUPS, st.sampled_from(["pa_grpo", "pa_grpo_no_separation", "grpo"]), st.integers(0, 2**31))
def test_group_invariants(groups: list[list[float]], estimator: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.tensor([s for group in groups for s in group])
    index = [g for g, group in enumerate(groups) for _ in group]
    size = scores.shape[0]
    split = torch.randint(0, 7, (size, 1), generator=generator)
    positions = torch.arange(8)[None, :]
    perception, reasoning = (positions < split).float(), ((positions >= split) & (positions < 7)).float()
    reasoning_scores = scores.flip(0)
    result = compute_process_advantages(estimator, scores, reasoning_scores, torch.ones(size, 8), index,
                                        perception_mask=perception, reasoning_mask=reasoning)
    assert torch.isfinite(result.advantages).all()
    if estimator == "pa_grpo":
        assert (result.advantages[:, 7] == 0).all()  # token 7 is in no process
        expected = result.perception_advantage[:, None] * perception + result.reasoning_advantage[:, None] * reasoning
        assert torch.equal(result.advantages, expected)
    per_rollout = (result.perception_advantage, result.reasoning_advantage)
    for advantage in per_rollout:
        for g in range(len(groups)):
            members = advantage[torch.tensor(index) == g]
            assert abs(float(members.sum())) < 1e-4  # centred inside every group
    for fraction in result.collapse_fraction.values():
        assert 0.0 <= fraction <= 1.0
    singles = sum(len(group) == 1 or len(set(group)) == 1 for group in groups)
    if estimator != "grpo":
        assert result.collapse_fraction["perception"] == pytest.approx(singles / len(groups))
