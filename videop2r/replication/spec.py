"""The study file (configs/replication.yaml): seeds, arms, gate thresholds, task sizes, base config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from videop2r.data.hard_task import HardTaskSpec

# Arm name -> overrides of the base config for `videop2r train` (None: no RL, the SFT model itself).
ARMS: dict[str, list[str] | None] = {
    "pa_grpo": ["algorithm.adv_estimator=pa_grpo"],
    "no_separation": ["algorithm.adv_estimator=pa_grpo_no_separation"],
    # the paper's process-agnostic baseline: the outcome reward only, one advantage on all tokens
    "grpo": ["algorithm.adv_estimator=grpo", "algorithm.use_perception_reward=false"],
    "no_perception_reward": ["algorithm.adv_estimator=pa_grpo", "algorithm.use_perception_reward=false"],
    "grpo_summed": ["algorithm.adv_estimator=grpo"],
    "sft": None,
}
# The paper's ordering (Table 2): PA-GRPO > no-separation > GRPO, and without perception reward < PA-GRPO.
PAPER_ORDER = ("pa_grpo", "no_separation", "grpo", "no_perception_reward", "sft")


class GateSpec(BaseModel):
    """Preconditions for the mechanism to be able to show, measured from the SFT model."""

    model_config = ConfigDict(extra="forbid")

    hard_perception: tuple[float, float] = (0.15, 0.85)  # SFT leaves perception on hard clips partial
    min_answer_given_observation: float = 0.6  # a right observation mostly gives a right answer
    max_rho: float = 0.8  # within-group corr(R_P, R_R): the outcome is a noisy signal for perception


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    arms: list[str] = Field(default_factory=lambda: ["pa_grpo", "no_separation", "grpo", "no_perception_reward",
                                                     "sft"])
    parallel: int = Field(2, ge=1)  # jobs at a time
    bootstrap: int = Field(2000, ge=100)
    data_seed: int = 0  # the task's clips (the same for every seed: a seed sets order, SFT and sampling)
    gate: GateSpec = Field(default_factory=GateSpec)
    task: HardTaskSpec = Field(default_factory=HardTaskSpec)
    # the base VideoP2R config of both stages (written to <out>/base-config.yaml)
    train: dict[str, Any] = Field(default_factory=dict)
    sft_overrides: list[str] = Field(default_factory=list)
    rl_overrides: list[str] = Field(default_factory=list)

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)}")
        if not any(ARMS[a] is not None for a in arms):
            raise ValueError("the study needs at least one RL arm")
        return list(dict.fromkeys(arms))

    @property
    def rl_arms(self) -> list[str]:
        return [a for a in self.arms if ARMS[a] is not None]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise ValueError(f"REPLICATION_SEEDS must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("REPLICATION_SEEDS names no seed")
    return seeds


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def load_study(path: str | Path, overrides: list[str] | None = None, env: dict[str, str] | None = None) -> StudySpec:
    """The study file with `a.b=value` overrides (YAML values) and $REPLICATION_SEEDS applied."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for text in overrides or []:
        key, sep, value = text.partition("=")
        if not sep:
            raise ValueError(f"override {text!r} is not KEY=VALUE")
        _set(data, key.strip(), yaml.safe_load(value))
    env = os.environ if env is None else env
    if env.get("REPLICATION_SEEDS"):
        data["seeds"] = parse_seeds(env["REPLICATION_SEEDS"])
    return StudySpec.model_validate(data)
