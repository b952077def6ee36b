"""One config tree for every command: pydantic models, loaded from YAML, overridden by `a.b.c=value`.

A wrong key or a wrong type is a `ConfigError` whose message is one line naming the field path,
e.g. ``config error: algorithm.clip_ratio: Input should be a valid number``.

The sections live by what they configure (`inputs`, `rollouts`, `training`, `offline`,
`processes`), the tree and its loading in `tree`; every name is importable from here.
"""

from __future__ import annotations

from videop2r.config.inputs import DataConfig, ModelConfig, StorageConfig
from videop2r.config.offline import CoTConfig, EvalConfig
from videop2r.config.processes import MetricsConfig, ServerConfig
from videop2r.config.rollouts import RewardConfig, RolloutConfig
from videop2r.config.section import ConfigError, Section
from videop2r.config.training import (
    MOVED_TO_LEARNER,
    AlgorithmConfig,
    LearnerConfig,
    SFTConfig,
    TrainerConfig,
    migrate_learner_keys,
)
from videop2r.config.tree import VideoP2RConfig, dump_config, load_config, parse_override

__all__ = [
    "MOVED_TO_LEARNER", "AlgorithmConfig", "CoTConfig", "ConfigError", "DataConfig", "EvalConfig", "LearnerConfig",
    "MetricsConfig", "ModelConfig", "RewardConfig", "RolloutConfig", "SFTConfig", "Section", "ServerConfig",
    "StorageConfig", "TrainerConfig", "VideoP2RConfig", "dump_config", "load_config", "migrate_learner_keys",
    "parse_override",
]
