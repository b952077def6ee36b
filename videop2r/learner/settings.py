"""What a learner worker needs to know, cut out of the one config tree and shipped to each worker.

Workers get a `LearnerSettings` (picklable pydantic) instead of the whole `VideoP2RConfig`, so a
worker sees exactly the knobs that shape the update and nothing it could misread.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videop2r.config import AlgorithmConfig, StorageConfig, VideoP2RConfig


class LearnerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- policy: HF checkpoint (local dir or s3:// URI); reference: frozen π_ref, needed when
    #    algorithm.kl_coef > 0 ("" then means the starting policy, model_path)
    model_path: str
    reference_path: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    # -- optimisation
    lr: float = Field(1e-6, gt=0)
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    total_steps: int = Field(1000, ge=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0)
    # -- batch shapes: mini-batch is global (all workers), micro-batch is per worker
    mini_batch_size: int = Field(56, ge=1)
    micro_batch_size: int = Field(8, ge=1)
    ppo_epochs: int = Field(1, ge=1)
    # -- sampling temperature of the rollouts: log-probs are taken of logits / temperature
    temperature: float = Field(1.0, gt=0)
    # -- the rollout never samples vision placeholder tokens; log-probs renormalise without them too
    block_vision_tokens: bool = True
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    # -- runtime
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0)
    collective_timeout_s: float = Field(600.0, gt=0)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="before")
    @classmethod
    def _reference_for_kl(cls, data: Any) -> Any:
        # the KL term needs π_ref: without a named one, it is the starting policy
        if isinstance(data, dict) and not data.get("reference_path"):
            algorithm = data.get("algorithm")
            kl_coef = algorithm.kl_coef if isinstance(algorithm, AlgorithmConfig) else \
                (algorithm or {}).get("kl_coef", AlgorithmConfig().kl_coef)
            if kl_coef > 0 and data.get("model_path"):
                data = {**data, "reference_path": data["model_path"]}
        return data

    @classmethod
    def from_config(cls, config: VideoP2RConfig, model_path: str | None = None) -> "LearnerSettings":
        """The learner's view of `config`; `model_path` overrides `config.model.path` (e.g. a resume)."""
        trainer = config.trainer
        policy = model_path or config.model.path
        # The reference is only needed when the KL term is on (SPEC §4: π_ref = the SFT model).
        reference = (trainer.reference_path or config.model.path) if config.algorithm.kl_coef > 0 else ""
        return cls(
            model_path=policy,
            reference_path=reference,
            dtype=config.model.dtype,
            attn_implementation=config.model.attn_implementation,
            lr=trainer.lr,
            lr_schedule=trainer.lr_schedule,
            warmup_steps=trainer.warmup_steps,
            total_steps=max(1, trainer.total_steps),
            min_lr_ratio=trainer.min_lr_ratio,
            weight_decay=trainer.weight_decay,
            adam_betas=trainer.adam_betas,
            grad_clip=trainer.grad_clip,
            mini_batch_size=trainer.mini_batch_size,
            micro_batch_size=trainer.micro_batch_size,
            ppo_epochs=trainer.ppo_epochs,
            # temperature 0 (greedy eval rollouts) is never trained on; keep the division defined
            temperature=config.rollout.temperature or 1.0,
            algorithm=config.algorithm,
            seed=trainer.seed,
            device=trainer.learner_device,
            threads=trainer.learner_threads,
            collective_timeout_s=trainer.collective_timeout_s,
            storage=config.storage,
        )
