"""One config tree for every command: pydantic models, loaded from YAML, overridden by `a.b.c=value`.

A wrong key or a wrong type is a `ConfigError` whose message is one line naming the field path,
e.g. ``config error: algorithm.clip_ratio: Input should be a valid number``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line and names the field path."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageConfig(Section):
    # -- where runs, checkpoints and shards live: a local directory or s3://bucket/prefix
    uri: str = "runs/store"
    # -- S3 endpoint host:port (falls back to $S3_ENDPOINT / $AWS_ENDPOINT_URL)
    endpoint: str | None = None
    # -- credentials (fall back to $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY or $MINIO_ROOT_USER/...)
    access_key: str | None = None
    secret_key: SecretStr | None = None
    region: str | None = None
    # -- use https to reach the S3 endpoint
    secure: bool = False
    # -- objects above this size are uploaded in parts of this size (MiB, S3 minimum 5)
    part_size_mb: int = Field(16, ge=5, le=5120)
    # -- attempts on transient errors (connection reset, 5xx, throttling), exponential backoff
    max_retries: int = Field(5, ge=0, le=20)
    retry_backoff_s: float = Field(0.2, gt=0)


class DataConfig(Section):
    # -- shards to train on (local dir or s3://...), as written by `videop2r data pack`
    train_uri: str = "runs/demo/shards/train"
    # -- held-out shards for evaluation
    eval_uri: str | None = "runs/demo/shards/eval"
    # -- Qwen2.5-VL reference frame sampling (qwen_vl_utils.vision_process)
    fps: float = Field(2.0, gt=0)
    nframes: int | None = Field(None, ge=2)
    min_frames: int = Field(4, ge=2)
    max_frames: int = Field(16, ge=2)
    video_min_pixels: int = Field(128 * 28 * 28, gt=0)
    video_max_pixels: int = Field(128 * 28 * 28, gt=0)
    video_total_pixels: int | None = Field(None, gt=0)
    image_min_pixels: int = Field(4 * 28 * 28, gt=0)
    image_max_pixels: int = Field(16384 * 28 * 28, gt=0)
    # -- shuffling and streaming
    seed: int = 0
    shuffle: bool = True
    prefetch: int = Field(8, ge=0)
    decode_workers: int = Field(2, ge=1)
    # -- records per tar shard when packing
    shard_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _frames_ordered(self) -> "DataConfig":
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) > max_frames ({self.max_frames})")
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError("video_min_pixels > video_max_pixels")
        return self


class ModelConfig(Section):
    # -- HF checkpoint directory or s3:// URI of one (Qwen2.5-VL family)
    path: str = "runs/demo/model/init"
    # -- preset used by `videop2r model init` when path does not exist yet
    preset: Literal["tiny", "small"] = "tiny"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"


class RolloutConfig(Section):
    # -- SGLang-API endpoints (http://host:port); empty = start the embedded server
    endpoints: list[str] = Field(default_factory=list)
    balance: Literal["least_loaded", "round_robin"] = "least_loaded"
    # -- G, rollouts per prompt
    n: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)


class RewardConfig(Section):
    # -- reward-accuracy service endpoints; empty = score in-process
    accuracy_endpoints: list[str] = Field(default_factory=list)
    # -- reward-judge service endpoints; empty = judge in-process
    judge_endpoints: list[str] = Field(default_factory=list)
    # -- perception judge kind (SPEC §5): an LLM, ground-truth evidence, or embedding similarity
    judge: Literal["openai", "evidence", "embedding"] = "evidence"
    judge_url: str | None = None
    judge_model: str = "judge"
    # -- name of the env var that holds the judge API key (never the key itself)
    judge_api_key_env: str = "VIDEOP2R_JUDGE_API_KEY"
    embedding_threshold: float = Field(0.75, ge=-1, le=1)
    # -- SPEC §4 length reward: token ranges and bonus
    perception_length: tuple[int, int] = (128, 320)
    reasoning_length: tuple[int, int] = (320, 512)
    length_bonus: float = Field(0.2, ge=0)
    # -- tokenizer for segment lengths: a HF tokenizer dir, or "whitespace"
    tokenizer: str = "whitespace"
    # -- client/service limits
    max_in_flight: int = Field(32, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    cache_size: int = Field(4096, ge=0)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "RewardConfig":
        for name in ("perception_length", "reasoning_length"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: lower bound {low} > upper bound {high}")
        return self


class AlgorithmConfig(Section):
    # -- pa_grpo (per-process advantages on their own tokens), grpo (process-agnostic),
    #    pa_grpo_no_separation (both advantages on all tokens)
    adv_estimator: Literal["pa_grpo", "grpo", "pa_grpo_no_separation"] = "pa_grpo"
    # -- ablations of SPEC §6: drop a reward term
    use_perception_reward: bool = True
    use_reasoning_reward: bool = True
    use_length_reward: bool = True
    # -- group normalisation epsilon (SPEC §4)
    norm_eps: float = Field(1e-6, gt=0)
    clip_ratio: float = Field(0.2, gt=0, lt=1)
    kl_coef: float = Field(0.04, ge=0)
    # -- verl kl_penalty name; "low_var_kl" is the k3 estimator
    kl_estimator: Literal["low_var_kl", "kl", "abs", "mse", "k3"] = "low_var_kl"
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"


class TrainerConfig(Section):
    run_name: str = "demo"
    seed: int = 0
    total_steps: int = Field(1000, ge=0)
    # -- prompts per step; batch = prompts_per_step × rollout.n
    prompts_per_step: int = Field(7, ge=1)
    mini_batch_size: int = Field(56, ge=1)
    micro_batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-6, gt=0)
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    # -- learner workers (Ray actors, one FSDP2 shard each)
    num_workers: int = Field(1, ge=1)
    sync_every: int = Field(1, ge=1)
    eval_every: int = Field(0, ge=0)
    save_every: int = Field(50, ge=0)


class MetricsConfig(Section):
    # -- Prometheus /metrics port of the process (0 = off)
    port: int = Field(0, ge=0, le=65535)
    jsonl: bool = True
    tensorboard: bool = False


class VideoP2RConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


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
