"""The whole config tree and its loading: YAML file, then `a.b.c=value` overrides, then validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from videop2r.config.inputs import DataConfig, ModelConfig, StorageConfig
from videop2r.config.offline import CoTConfig, EvalConfig
from videop2r.config.processes import MetricsConfig, ServerConfig
from videop2r.config.rollouts import RewardConfig, RolloutConfig
from videop2r.config.section import ConfigError, Section
from videop2r.config.training import AlgorithmConfig, LearnerConfig, TrainerConfig, migrate_learner_keys


class VideoP2RConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cot: CoTConfig = Field(default_factory=CoTConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_learner_keys(cls, data: Any) -> Any:
        # trainer.num_workers / learner_device / learner_threads moved to learner.*: one source of truth
        return migrate_learner_keys(data)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    path = ".".join(str(part) for part in err["loc"]) or "<root>"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"config error: {path}: {err['msg']}{more}"


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config error: {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b.c=value``; the value is parsed as YAML (so 3, 1e-6, true, [a, b] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"config error: override {text!r} is not of the form a.b.c=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> VideoP2RConfig:
    """Load the YAML at `path` (or the defaults), apply `a.b.c=value` overrides, validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config error: file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config error: {path}: not valid YAML: {exc}".replace("\n", " ")) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config error: {path}: top level must be a mapping")
        tree = loaded
    for text in overrides or []:
        _set_path(tree, *parse_override(text))
    try:
        return VideoP2RConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None


def dump_config(config: VideoP2RConfig) -> str:
    """The resolved tree as YAML (secrets masked)."""
    data = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False)
