"""How rollouts are generated (`rollout:`) and scored (`reward:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from videop2r.config.section import Section


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
    # -- the video in evaluation's SGLang requests (both: text prompt + video_data data: URI): the
    #    exact sampled frames, lossless (learner-identical visual tokens), or the source file, which
    #    the server decodes and samples itself. Training always sends the exact frames.
    video_transport: Literal["frames", "source"] = "frames"
    # -- refuse (and retry elsewhere) results generated with another weight version than the last sync
    check_weight_version: bool = True
    # -- weight sync: a local directory on a volume the learner's rank 0, the driver and every rollout
    #    pod mount (the chart's sharedWeights PVC); each version goes to <weights_dir>/v<version>/ and
    #    the pods load that path. Empty = <run dir>/weights (only for servers on the driver's machine)
    weights_dir: str = ""
    # -- immediate retries of a failed weight update on one endpoint (after them it is out of
    #    rotation and re-synced in the background until it reports the new weight_version)
    weight_sync_retries: int = Field(2, ge=0)
    # -- parity gate before step 1: rollout-vs-learner mean |Δ log p| on the first N train prompts
    #    must stay below parity_max_logprob_gap, or the run refuses to start (0 prompts = off)
    parity_prompts: int = Field(2, ge=0)
    parity_max_logprob_gap: float = Field(0.05, gt=0)

    @field_validator("weights_dir")
    @classmethod
    def _weights_dir_local(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"{value!r} is a URI; SGLang loads weights from a local directory: give the mount "
                             f"path of a volume the learner and the rollout pods share")
        return value


class RewardConfig(Section):
    # -- reward-accuracy service endpoints; empty = score in-process
    accuracy_endpoints: list[str] = Field(default_factory=list)
    # -- reward-judge service endpoints; empty = judge in-process
    judge_endpoints: list[str] = Field(default_factory=list)
    # -- perception judge kind (method §5): an LLM, ground-truth evidence, or embedding similarity
    judge: Literal["openai", "evidence", "embedding"] = "evidence"
    judge_url: str | None = None
    judge_model: str = "judge"
    # -- name of the env var that holds the judge API key (never the key itself)
    judge_api_key_env: str = "VIDEOP2R_JUDGE_API_KEY"
    embedding_threshold: float = Field(0.75, ge=-1, le=1)
    # -- method §4 length reward: token ranges and bonus
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
    # -- judge LLM sampling: method §5 asks for a brief explanation, then the verdict
    judge_max_tokens: int = Field(512, ge=1)
    judge_temperature: float = Field(0.0, ge=0)
    # -- reward-accuracy scoring processes; 0 = the CPUs the pod may use (affinity and cgroup quota)
    score_workers: int = Field(0, ge=0)
    # -- largest request body either reward service accepts (bigger -> 413)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # -- items per request and characters per text field a reward service accepts (more -> 422)
    max_items: int = Field(100_000, ge=1)
    max_field_chars: int = Field(4 * 1024 * 1024, ge=1)
    # -- per-item compute budget of the quadratic scorers (OCR WER, ROUGE-L): truth words x response
    #    words (ROUGE: also at most 2*sqrt(budget) words to stem); an item over it is not scored
    #    (a counted error line, reason "over_budget")
    score_budget_cells: int = Field(4_000_000, ge=1)
    # -- longer observations are refused by the judge (rule too_long) instead of being judged
    max_observation_chars: int = Field(64 * 1024, ge=1)
    # -- bytes the judge's verdict cache may hold (keys are digests, so this bounds it with cache_size)
    cache_bytes: int = Field(64 * 1024 * 1024, ge=0)
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
