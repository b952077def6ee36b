"""What a learner worker needs to know, cut out of the one config tree and shipped to each worker.

Workers get a `LearnerSettings` (picklable pydantic) instead of the whole `VideoP2RConfig`, so a
worker sees exactly the knobs that shape the update and nothing it could misread.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videop2r.config import AlgorithmConfig, LearnerConfig, StorageConfig, VideoP2RConfig


def flash_attention_available() -> bool:
    """Whether transformers can use flash_attention_2 here (the flash_attn package is importable)."""
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def one_update_per_batch(settings: LearnerSettings, batch_size: int) -> bool:
    """True when a batch of `batch_size` rows is exactly one optimizer step (one epoch, one mini-batch):
    then π_old = π_θ at the update, so the old log-probs are the current ones, detached."""
    return settings.ppo_epochs == 1 and batch_size <= settings.mini_batch_size


#: the config tree's defaults: a setting built without the tree (tests, benches) defaults to them,
#: so no default is declared twice
_TREE = VideoP2RConfig()
_TRAINER, _MODEL, _ROLLOUT = _TREE.trainer, _TREE.model, _TREE.rollout


class LearnerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- policy: HF checkpoint (local dir or s3:// URI); reference: frozen π_ref, needed when
    #    algorithm.kl_coef > 0 ("" then means the starting policy, model_path)
    model_path: str
    reference_path: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = _MODEL.dtype
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = _MODEL.attn_implementation
    # -- optimisation
    lr: float = Field(_TRAINER.lr, gt=0)
    lr_schedule: Literal["cosine", "constant", "linear"] = _TRAINER.lr_schedule
    warmup_steps: int = Field(_TRAINER.warmup_steps, ge=0)
    total_steps: int = Field(max(1, _TRAINER.total_steps), ge=1)
    min_lr_ratio: float = Field(_TRAINER.min_lr_ratio, ge=0, le=1)
    weight_decay: float = Field(_TRAINER.weight_decay, ge=0)
    adam_betas: tuple[float, float] = tuple(_TRAINER.adam_betas)
    grad_clip: float = Field(_TRAINER.grad_clip, gt=0)
    # -- batch shapes: mini-batch is global (all workers), micro-batch is per worker
    mini_batch_size: int = Field(_TRAINER.mini_batch_size, ge=1)
    micro_batch_size: int = Field(_TRAINER.micro_batch_size, ge=1)
    ppo_epochs: int = Field(_TRAINER.ppo_epochs, ge=1)
    # -- sampling temperature of the rollouts: log-probs are taken of logits / temperature
    temperature: float = Field(_ROLLOUT.temperature or 1.0, gt=0)
    # -- the rollout never samples vision placeholder tokens; log-probs renormalise without them too
    block_vision_tokens: bool = _ROLLOUT.block_vision_tokens
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    # -- runtime: the config's `learner:` section as is (device, threads, loading, memory knobs)
    seed: int = _TRAINER.seed
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    collective_timeout_s: float = Field(_TRAINER.collective_timeout_s, gt=0)
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
    def from_config(cls, config: VideoP2RConfig, model_path: str | None = None) -> LearnerSettings:
        """The PA-GRPO learner's view of `config`; `model_path` overrides `config.model.path` (e.g. a resume)."""
        trainer = config.trainer
        # The reference is only needed when the KL term is on (method §4: π_ref = the SFT model).
        reference = (trainer.reference_path or config.model.path) if config.algorithm.kl_coef > 0 else ""
        return cls(
            **_shared(config, model_path),
            reference_path=reference,
            lr=trainer.lr,
            lr_schedule=trainer.lr_schedule,
            warmup_steps=trainer.warmup_steps,
            total_steps=max(1, trainer.total_steps),
            weight_decay=trainer.weight_decay,
            mini_batch_size=trainer.mini_batch_size,
            micro_batch_size=trainer.micro_batch_size,
            ppo_epochs=trainer.ppo_epochs,
            # temperature 0 (greedy eval rollouts) is never trained on; keep the division defined
            temperature=config.rollout.temperature or 1.0,
            # the learner renormalises without the ids the rollout was kept from sampling
            block_vision_tokens=config.rollout.block_vision_tokens,
            algorithm=config.algorithm,
        )

    @classmethod
    def for_sft(cls, config: VideoP2RConfig) -> LearnerSettings:
        """The SFT learner's view of `config`: the `trainer.sft` optimiser, one optimizer step per
        batch × grad_accum rows, no KL (so no π_ref), log-probs of plain logits (the reference's NLL)."""
        sft, workers = config.trainer.sft, config.learner.num_workers
        return cls(
            **_shared(config),
            reference_path="",
            lr=sft.lr,
            lr_schedule=sft.lr_schedule,
            warmup_steps=sft.warmup_steps,
            total_steps=max(1, sft.steps),
            weight_decay=sft.weight_decay,
            # a multiple of the workers: the learner pads the batch with weightless rows (same gradient)
            mini_batch_size=math.ceil(sft.batch_size * sft.grad_accum / workers) * workers,
            micro_batch_size=max(1, math.ceil(sft.batch_size / workers)),
            ppo_epochs=1,
            temperature=1.0,
            algorithm=config.algorithm.model_copy(update={"kl_coef": 0.0}),
        )


def _shared(config: VideoP2RConfig, model_path: str | None = None) -> dict[str, Any]:
    """The settings both stages take from `config` unchanged (the `learner:` section as is)."""
    if config.model.attn_implementation == "flash_attention_2" and not flash_attention_available():
        raise ValueError("model.attn_implementation: flash_attention_2 needs the flash_attn package, which "
                         "is not installed here; use sdpa")
    trainer = config.trainer
    return {
        "model_path": model_path or config.model.path,
        "dtype": config.model.dtype,
        "attn_implementation": config.model.attn_implementation,
        "min_lr_ratio": trainer.min_lr_ratio,
        "adam_betas": trainer.adam_betas,
        "grad_clip": trainer.grad_clip,
        "seed": trainer.seed,
        "learner": config.learner,
        "collective_timeout_s": trainer.collective_timeout_s,
        "storage": config.storage,
    }
