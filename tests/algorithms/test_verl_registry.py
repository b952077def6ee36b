"""Our estimators in verl's advantage-estimator registry, called the way verl calls them."""

from __future__ import annotations

import importlib
import typing

import numpy as np
import pytest
import torch
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

import videop2r.algorithms as algorithms
from videop2r.algorithms import verl_registry
from videop2r.config import AlgorithmConfig


def test_verl_returns_ours_for_every_config_value() -> None:
    assert get_adv_estimator_fn("pa_grpo") is algorithms.compute_pa_grpo_advantage
    assert get_adv_estimator_fn("pa_grpo_no_separation") is algorithms.compute_pa_grpo_no_separation_advantage
    config_values = typing.get_args(AlgorithmConfig.model_fields["adv_estimator"].annotation)
    for value in config_values:
        assert get_adv_estimator_fn(algorithms.registered_name(value)).__module__ == verl_registry.__name__
    with pytest.raises(ValueError, match="unknown adv_estimator"):
        algorithms.registered_name("ppo")


def test_reimport_and_reregistration_are_idempotent() -> None:
    importlib.reload(importlib.import_module("videop2r.algorithms"))
    algorithms.register_estimators()
    reloaded = importlib.reload(verl_registry)
    reloaded.register_estimators()  # a new function object with the same name replaces ours
    assert get_adv_estimator_fn("pa_grpo") is reloaded.compute_pa_grpo_advantage
    reloaded.register_estimators()
    importlib.reload(algorithms)  # the package re-exports the reloaded functions again
    assert get_adv_estimator_fn("pa_grpo") is algorithms.compute_pa_grpo_advantage


def test_a_foreign_estimator_under_our_name_is_an_error() -> None:
    ours = core_algos.ADV_ESTIMATOR_REGISTRY["pa_grpo"]
    with pytest.raises(ValueError, match="already been registered"):
        core_algos.register_adv_est("pa_grpo")(lambda **kwargs: None)
    core_algos.ADV_ESTIMATOR_REGISTRY["pa_grpo"] = lambda **kwargs: None  # someone else got there first
    try:
        with pytest.raises(ValueError, match="already been registered"):
            verl_registry.register_estimators()
    finally:
        core_algos.ADV_ESTIMATOR_REGISTRY["pa_grpo"] = ours


def masks() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    response = torch.ones(4, 5)
    perception = torch.tensor([[1, 1, 0, 0, 0]] * 4).float()
    reasoning = torch.tensor([[0, 0, 1, 1, 0]] * 4).float()
    return response, perception, reasoning


def test_scores_from_token_level_rewards_on_the_process_masks() -> None:
    response, perception, reasoning = masks()
    p_scores, r_scores = torch.tensor([1.0, 0.0, 2.2, 1.0]), torch.tensor([2.0, 1.0, 1.0, 1.0])
    token_level = torch.zeros(4, 5)
    token_level[:, 1] = p_scores  # last perception token
    token_level[:, 3] = r_scores  # last reasoning token
    index = np.array(["u0", "u0", "u1", "u1"], dtype=object)
    metrics: dict[str, float] = {}
    via_tokens, returns = get_adv_estimator_fn("pa_grpo")(
        token_level_rewards=token_level, response_mask=response, index=index, config=AlgoConfig(),
        perception_mask=perception, reasoning_mask=reasoning, metrics=metrics,
    )
    via_scores, _ = get_adv_estimator_fn("pa_grpo")(
        token_level_rewards=token_level, response_mask=response, index=index,
        perception_mask=perception, reasoning_mask=reasoning, perception_scores=p_scores, reasoning_scores=r_scores,
    )
    assert torch.equal(via_tokens, via_scores) and torch.equal(via_tokens, returns)
    assert metrics["advantage/collapse_fraction/reasoning"] == 0.5  # group u1: reasoning 1.0, 1.0
    assert (via_tokens[2:, 2:4] == 0).all() and (via_tokens[:, 4] == 0).all()


def test_grpo_without_masks_uses_the_summed_token_rewards() -> None:
    response, _, _ = masks()
    token_level = torch.zeros(4, 5)
    token_level[:, -1] = torch.tensor([3.0, 1.0, 2.0, 2.0])
    advantages, _ = get_adv_estimator_fn("process_agnostic_grpo")(
        token_level_rewards=token_level, response_mask=response, index=np.array([0, 0, 1, 1]),
    )
    assert advantages[0, 0] > 0 > advantages[1, 0] and (advantages[2:] == 0).all()


def test_config_settings_are_read_from_verl_and_our_configs() -> None:
    response, perception, reasoning = masks()
    kwargs = dict(token_level_rewards=torch.zeros(4, 5), response_mask=response, index=[0, 0, 1, 1],
                  perception_mask=perception, reasoning_mask=reasoning,
                  perception_scores=torch.tensor([3.0, 1.0, 0.0, 0.0]), reasoning_scores=torch.zeros(4))
    centred, _ = get_adv_estimator_fn("pa_grpo")(config=AlgoConfig(norm_adv_by_std_in_grpo=False), **kwargs)
    assert centred[0, 0] == pytest.approx(1.0)  # (3 − 2), no division by the std
    wide_eps, _ = get_adv_estimator_fn("pa_grpo")(config=AlgorithmConfig(norm_eps=1.0), **kwargs)
    assert wide_eps[0, 0] == pytest.approx(1.0 / (2**0.5 + 1.0))


def test_missing_inputs_are_clear_errors() -> None:
    response, perception, _ = masks()
    with pytest.raises(ValueError, match="needs perception/reasoning scores or masks"):
        get_adv_estimator_fn("pa_grpo")(token_level_rewards=torch.zeros(4, 5), response_mask=response, index=[0] * 4)
    with pytest.raises(ValueError, match="both"):
        get_adv_estimator_fn("pa_grpo")(token_level_rewards=torch.zeros(4, 5), response_mask=response, index=[0] * 4,
                                        perception_scores=torch.zeros(4))
