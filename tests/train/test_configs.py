"""The shipped run configs load, and each ablation differs from the paper setting only where it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from videop2r.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ABLATIONS = {
    "grpo": {"algorithm.adv_estimator": "grpo"},
    "no-separation": {"algorithm.adv_estimator": "pa_grpo_no_separation"},
    "without-perception-reward": {"algorithm.use_perception_reward": False},
    "without-reasoning-reward": {"algorithm.use_reasoning_reward": False},
    "without-length-reward": {"algorithm.use_length_reward": False},
}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_paper_config_has_the_spec_numbers():
    config = load_config(CONFIGS / "paper-7b.yaml")
    assert (config.rollout.n, config.trainer.prompts_per_step, config.trainer.total_steps) == (8, 7, 1000)
    assert config.trainer.mini_batch_size == 56 and config.learner.num_workers == 7
    assert (config.algorithm.clip_ratio, config.algorithm.kl_coef, config.algorithm.kl_estimator) == (0.2, 0.04,
                                                                                                     "low_var_kl")
    assert config.trainer.lr == 1e-6 and config.trainer.lr_schedule == "cosine"
    assert tuple(config.reward.perception_length) == (128, 320) and tuple(config.reward.reasoning_length) == (320, 512)
    assert config.reward.length_bonus == 0.2 and config.rollout.max_new_tokens == 1024
    assert config.data.nframes == 16 and config.data.video_max_pixels == 128 * 28 * 28
    assert (config.trainer.sft.batch_size, config.trainer.sft.grad_accum) == (8, 2)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_changes_one_thing(name):
    paper = _flat(load_config(CONFIGS / "paper-7b.yaml").model_dump(mode="json"))
    ablation = _flat(load_config(CONFIGS / "ablations" / f"{name}.yaml").model_dump(mode="json"))
    changed = {key: value for key, value in ablation.items() if paper[key] != value}
    assert changed == {**ABLATIONS[name], "trainer.run_name": f"ablation-{name}-7b"}


def test_demo_config_loads_and_fits_the_laptop():
    config = load_config(CONFIGS / "demo.yaml")
    assert config.rollout.endpoints == [] and config.trainer.local_reward_services
    assert config.reward.judge == "evidence" and config.learner.num_workers == 1
    assert config.trainer.mini_batch_size <= config.trainer.prompts_per_step * config.rollout.n
