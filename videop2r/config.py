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
    # -- longest single wait between retries
    retry_max_backoff_s: float = Field(10.0, gt=0)
    # -- S3 connect and read timeouts per request
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    # -- create the bucket on the first write when it does not exist
    create_bucket: bool = True


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
    # -- swscale filter for the video frame resize (the reference uses antialiased bicubic)
    resize_interpolation: Literal["bicubic", "bilinear", "area"] = "bicubic"
    # -- shuffling and streaming
    seed: int = 0
    shuffle: bool = True
    prefetch: int = Field(8, ge=0)
    decode_workers: int = Field(2, ge=1)
    # -- records per tar shard when packing
    shard_size: int = Field(256, ge=1)
    # -- a shard is closed early once its media reach this size (MiB)
    shard_max_mb: int = Field(1024, ge=1)
    # -- check every media at pack time by decoding its first and last frames (skip unreadable ones)
    probe_media_on_pack: bool = True

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
    # -- local cache of checkpoints downloaded from s3:// (empty = $VIDEOP2R_MODEL_CACHE or ~/.cache/videop2r/models)
    cache_dir: str = ""


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
    # -- seconds to open a connection before the endpoint counts as down
    connect_timeout_s: float = Field(5.0, gt=0)
    # -- base of the exponential cool-down of a failed endpoint (and of retry waits)
    retry_backoff_s: float = Field(0.5, gt=0)
    # -- mask EOS/stop tokens until this many tokens are out (an empty response breaks span labelling)
    min_new_tokens: int = Field(0, ge=0)
    # -- keep vision placeholder tokens out of samples (a sampled <|video_pad|> breaks the re-forward)
    block_vision_tokens: bool = True
    # -- how video reaches the server: exact frames + input_ids (embedded server; learner-identical
    #    visual tokens) or the media source + text prompt (SGLang pods decode and sample themselves)
    video_transport: Literal["frames", "source"] = "frames"
    # -- refuse (and retry elsewhere) results generated with another weight version than the last sync
    check_weight_version: bool = True


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
    # -- first retry delay of a judge call (doubles each attempt, with jitter, capped at retry_backoff_max_s)
    retry_backoff_s: float = Field(0.5, gt=0)
    retry_backoff_max_s: float = Field(8.0, gt=0)
    # -- judge LLM sampling: SPEC §5 asks for a brief explanation, then the verdict
    judge_max_tokens: int = Field(512, ge=1)
    judge_temperature: float = Field(0.0, ge=0)
    # -- reward-accuracy scoring processes; 0 = the CPUs the pod may use (affinity and cgroup quota)
    score_workers: int = Field(0, ge=0)
    # -- largest request body either reward service accepts (bigger -> 413)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # -- name of the env var holding the services' bearer token (unset or empty = no auth)
    auth_token_env: str = "VIDEOP2R_REWARD_TOKEN"
    # -- client side: whole-request timeout (covers the service's own retries) and attempts per batch
    request_timeout_s: float = Field(300.0, gt=0)
    request_retries: int = Field(3, ge=0)

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
    # -- divide by the group std (GRPO); false = only centre (Dr. GRPO). Same name as verl's AlgoConfig
    norm_adv_by_std_in_grpo: bool = True
    # -- PPO clip ε (verl actor: clip_ratio)
    clip_ratio: float = Field(0.2, gt=0, lt=1)
    # -- KL coefficient β (verl actor: kl_loss_coef)
    kl_coef: float = Field(0.04, ge=0)
    # -- verl kl_penalty name (verl actor: kl_loss_type); "low_var_kl" and "k3" are the k3 estimator
    kl_estimator: Literal["low_var_kl", "kl", "abs", "mse", "k3"] = "low_var_kl"
    # -- verl agg_loss mode (verl actor: loss_agg_mode)
    loss_agg_mode: Literal[
        "token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
    ] = "token-mean"


class SFTConfig(Section):
    # -- records to fine-tune on (shards of `videop2r data pack`); empty = data.train_uri
    data_uri: str = ""
    # -- optimizer steps; one step = batch_size samples (x grad_accum)
    steps: int = Field(200, ge=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(2, ge=1)
    lr: float = Field(1e-5, gt=0)
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    # -- held-out evaluation every N steps (0 = only before and after)
    eval_every: int = Field(0, ge=0)
    save_every: int = Field(0, ge=0)
    # -- publish the checkpoint with the best held-out accuracy instead of the last one
    keep_best: bool = False
    # -- where the fine-tuned HF model is written (π_ref and the start of PA-GRPO); empty = <output_dir>/sft-model
    output_path: str = ""


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
    # -- learner device: cuda (NCCL) when the Ray cluster has a GPU per worker, else cpu (gloo)
    learner_device: Literal["auto", "cpu", "cuda"] = "auto"
    # -- torch intra-op threads per learner worker (0 = torch's default)
    learner_threads: int = Field(0, ge=0)
    # -- passes over each rollout batch per step (PPO epochs)
    ppo_epochs: int = Field(1, ge=1)
    # -- AdamW betas and the floor of the cosine schedule (fraction of lr)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    # -- a collective that waits longer than this fails (a peer that hangs or died)
    collective_timeout_s: float = Field(600.0, gt=0)
    # -- after one learner worker fails, wait this long for the others before tearing the group down
    worker_failure_grace_s: float = Field(10.0, ge=0)
    sync_every: int = Field(1, ge=1)
    eval_every: int = Field(0, ge=0)
    save_every: int = Field(50, ge=0)
    # -- local run directory (metrics.jsonl, evals, report.md, plots); empty = runs/<run_name>
    output_dir: str = ""
    # -- checkpoints go to <storage.uri>/<checkpoint_prefix>/<run_name>/step-N/ ("latest" names the newest)
    checkpoint_prefix: str = "checkpoints"
    # -- complete checkpoints kept per run (0 = keep all)
    keep_checkpoints: int = Field(2, ge=0)
    # -- frozen reference policy π_ref (SPEC §4: the SFT model); empty = model.path
    reference_path: str = ""
    # -- Ray cluster address; empty = $RAY_ADDRESS, the job's cluster, or a new local Ray
    ray_address: str = ""
    # -- held-out samples per evaluation (0 = the whole eval split)
    eval_max_samples: int = Field(0, ge=0)
    # -- evaluate the starting weights before the first step (the "before" row of the report)
    eval_before: bool = True
    # -- a step fails if more than this fraction of its rollouts could not be generated or scored
    max_failed_fraction: float = Field(0.5, ge=0, le=1)
    # -- with no reward endpoints: start reward-accuracy and reward-judge as local processes (true),
    #    or score in-process (false). With no rollout endpoints a local rollout server is always started
    local_reward_services: bool = False
    # -- extra `videop2r serve rollout` arguments for the local rollout server (e.g. ["--threads", "2"])
    local_rollout_args: list[str] = Field(default_factory=list)
    # -- old log-probs of the PPO ratio: recomputed by the learner (verl's default), or the rollout's own
    old_log_prob_source: Literal["learner", "rollout"] = "learner"
    # -- where the final PA-GRPO policy is published as an HF checkpoint; empty = <output_dir>/pa_grpo-model
    output_path: str = ""
    # -- stage 1: supervised fine-tuning on the records' process-aware outputs
    sft: SFTConfig = Field(default_factory=SFTConfig)


class MetricsConfig(Section):
    # -- Prometheus /metrics port of the process (0 = off)
    port: int = Field(0, ge=0, le=65535)
    # -- address the /metrics server binds (0.0.0.0 in a pod)
    host: str = "127.0.0.1"
    jsonl: bool = True
    tensorboard: bool = False
    # -- tqdm progress bars on stderr
    progress: bool = True


class EvalConfig(Section):
    # -- frames per clip at inference (paper: 32), spread over the whole clip; a shorter clip gives all its frames
    frames: int = Field(32, ge=2)
    # -- per-frame pixel budget at inference (paper: 256·28·28) and its floor (Qwen2.5-VL's video default)
    max_pixels: int = Field(256 * 28 * 28, gt=0)
    min_pixels: int = Field(128 * 28 * 28, gt=0)
    # -- sampling at inference (paper: temperature 0.01, top_p 0.001) and the longest response
    temperature: float = Field(0.01, ge=0)
    top_p: float = Field(0.001, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=1)
    # -- requests in flight, and media decoded at once
    concurrency: int = Field(8, ge=1)
    decode_workers: int = Field(2, ge=1)
    # -- generate: SGLang /generate with the exact prompt ids and frames (needs the checkpoint's processor);
    #    chat: OpenAI /v1/chat/completions; auto: generate when a processor can be loaded, else chat
    transport: Literal["auto", "generate", "chat"] = "auto"
    # -- processor for transport generate with --endpoint (checkpoint dir or s3:// URI); empty = the server's model_path
    processor: str = ""
    # -- chat transport: how media travel (video_url: the file as a data URI; images: one JPEG per frame;
    #    frames: exact frames, embedded server only) and the model name sent
    chat_media: Literal["video_url", "images", "frames"] = "video_url"
    chat_model: str = "default"
    # -- items per benchmark (0 = all), e.g. for a smoke run
    limit: int = Field(0, ge=0)
    # -- stop after this many requests in a row failed (a dead endpoint); finished items are kept
    max_consecutive_failures: int = Field(20, ge=1)
    # -- perception-sufficiency diagnostic: an OpenAI-compatible text endpoint answers from the observation alone (empty = off)
    sufficiency_url: str = ""
    sufficiency_model: str = "default"
    sufficiency_max_tokens: int = Field(256, ge=1)
    # -- name of the env var holding the API key of chat endpoints (never the key itself)
    api_key_env: str = "VIDEOP2R_EVAL_API_KEY"
    # -- per-request timeout and attempts (a request is retried on timeouts, 429 and 5xx)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _pixels_ordered(self) -> "EvalConfig":
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) > max_pixels ({self.max_pixels})")
        return self


class CoTConfig(Section):
    # -- step 1 teacher: an OpenAI-compatible chat endpoint (SGLang serving Qwen2.5-VL-72B in the cluster)
    teacher_url: str = ""
    teacher_model: str = "default"
    # -- name of the env var holding the teacher's API key (never the key itself)
    teacher_api_key_env: str = "VIDEOP2R_TEACHER_API_KEY"
    # -- SPEC §3: the teacher samples at temperature 0
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1024, ge=1)
    # -- how media reach the teacher (video_url: the file as a data URI; images: one JPEG per sampled frame,
    #    as hosted APIs take it; frames: exact frames, embedded server only); frames follow the data section
    media: Literal["video_url", "images", "frames"] = "video_url"
    # -- step 2: drop outputs whose answer scores Acc_t below this (SPEC §3: 0.6)
    min_accuracy: float = Field(0.6, ge=0, le=1)
    # -- records in flight (teacher and judge calls), per-request timeout and attempts
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(1.0, gt=0)


class VideoP2RConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cot: CoTConfig = Field(default_factory=CoTConfig)


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
