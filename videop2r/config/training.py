"""The training stages: advantages and loss (`algorithm:`), SFT and PA-GRPO (`trainer:`), the FSDP2 learner (`learner:`)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator

from videop2r.config.section import Section

_log = logging.getLogger(__name__)


class AlgorithmConfig(Section):
    # -- pa_grpo (per-process advantages on their own tokens), grpo (process-agnostic),
    #    pa_grpo_no_separation (both advantages on all tokens)
    adv_estimator: Literal["pa_grpo", "grpo", "pa_grpo_no_separation"] = "pa_grpo"
    # -- ablations of method §6: drop a reward term
    use_perception_reward: bool = True
    use_reasoning_reward: bool = True
    use_length_reward: bool = True
    # -- group normalisation epsilon (method §4)
    norm_eps: float = Field(1e-6, gt=0)
    # -- divide by the group std (GRPO); false = only centre (Dr. GRPO). Same name as verl's AlgoConfig
    norm_adv_by_std_in_grpo: bool = True
    # -- PPO clip ε (verl actor: clip_ratio)
    clip_ratio: float = Field(0.2, gt=0, lt=1)
    # -- KL coefficient β (verl actor: kl_loss_coef)
    kl_coef: float = Field(0.04, ge=0)
    # -- verl kl_penalty name (verl actor: kl_loss_type); "low_var_kl" and "k3" are the k3 estimator
    kl_estimator: Literal["low_var_kl", "kl", "abs", "mse", "k3"] = "low_var_kl"
    # -- how token losses add up (verl actor: loss_agg_mode). seq-mean-process-mean (**ours**, the
    #    default) is method §4's objective: each rollout weighs 1/G, and inside it the perception and the
    #    reasoning term are each a mean over their own tokens, so neither the longer segment nor the
    #    longer rollout dominates (the KL term: per-rollout token mean). token-mean (verl's default)
    #    weighs by token count; seq-mean-token-mean is Video-R1's per-sequence mean
    loss_agg_mode: Literal[
        "seq-mean-process-mean", "token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ] = "seq-mean-process-mean"


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
    # -- where every scalar the driver logs goes (verl's trainer.logger, accepted as an alias): console,
    #    jsonl (<output_dir>/metrics.jsonl), tensorboard, wandb, mlflow; see videop2r.train.tracking
    loggers: list[Literal["console", "jsonl", "tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["console", "jsonl"], validation_alias=AliasChoices("loggers", "logger"))
    # -- W&B project / MLflow experiment of the runs (one tracker run per stage: <run_name>-<stage>)
    project_name: str = "videop2r"
    # -- checkpoints go to <storage.uri>/<checkpoint_prefix>/<run_name>/step-N/ ("latest" names the newest)
    checkpoint_prefix: str = "checkpoints"
    # -- complete checkpoints kept per run (0 = keep all)
    keep_checkpoints: int = Field(2, ge=0)
    # -- frozen reference policy π_ref (method §4: the SFT model); empty = model.path
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
    # -- per-rollout rewards/advantages (rollouts.jsonl) and per-item evaluations (eval_items.jsonl)
    #    in the run directory, for studies that re-score logged rollouts (`videop2r.replication`)
    dump_rollouts: bool = False
    # -- stage 1: supervised fine-tuning on the records' process-aware outputs
    sft: SFTConfig = Field(default_factory=SFTConfig)

    @field_validator("loggers", mode="before")
    @classmethod
    def _loggers_list(cls, value: Any) -> Any:
        """verl habits: a single name is a one-item list; a name given twice is logged to once."""
        if isinstance(value, str):
            value = [value]
        return list(dict.fromkeys(value)) if isinstance(value, (list, tuple)) else value


#: trainer keys that moved to the `learner:` section (old name -> new name)
MOVED_TO_LEARNER = {"num_workers": "num_workers", "learner_device": "device", "learner_threads": "threads"}


class LearnerConfig(Section):
    """The FSDP2 learner group; workers get this section as is (inside `LearnerSettings`)."""

    # -- learner workers (Ray actors, one FSDP2 shard each; one GPU each on CUDA)
    num_workers: int = Field(1, ge=1)
    # -- cuda (NCCL) when the Ray cluster has a GPU per worker, else cpu (gloo)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # -- torch intra-op threads per learner worker (0 = torch's default)
    threads: int = Field(0, ge=0)
    # -- who reads the checkpoint: rank 0 only (it streams each tensor, every rank receives only its
    #    shard: no full copy anywhere), or every rank (N copies)
    load: Literal["rank0", "every_rank"] = "rank0"
    # -- recompute each decoder/vision block's activations in backward instead of keeping them
    gradient_checkpointing: bool = False
    # -- micro-batches by token budget: rows (prompt + response tokens, padding cut) per micro-batch
    #    add up to at most this many; 0 = trainer.micro_batch_size rows per micro-batch. A row longer
    #    than the budget cannot be trained on: the driver drops it and counts it
    max_tokens_per_micro_batch: int = Field(0, ge=0)
    # -- rows whose prompt (vision tokens included) is longer are dropped and counted (0 = no limit)
    max_prompt_tokens: int = Field(0, ge=0)
    # -- π_ref's weights (frozen, never stepped: bf16 halves its memory) and whether its shards live on
    #    the CPU between uses (FSDP2 CPU offload; CUDA only)
    reference_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    reference_offload: bool = False
    # -- old log-probs of the PPO ratio: `auto` skips the pass when a batch is one optimizer step
    #    (ppo_epochs 1, mini-batch = batch: the ratio is 1, old = current detached); `always` recomputes
    old_log_prob_pass: Literal["auto", "always"] = "auto"
    # -- weight export streams parameter by parameter in buckets of this size (MiB, bf16 on rank 0)
    export_bucket_mb: int = Field(512, ge=1)


def migrate_learner_keys(data: Any) -> Any:
    """Move the old `trainer.<key>`s of MOVED_TO_LEARNER into `learner:`, with a warning; both set = error."""
    trainer = data.get("trainer") if isinstance(data, dict) else None
    if not isinstance(trainer, dict) or not set(trainer) & set(MOVED_TO_LEARNER):
        return data
    trainer, learner = dict(trainer), dict(data.get("learner") or {})
    for old, new in MOVED_TO_LEARNER.items():
        if old not in trainer:
            continue
        value = trainer.pop(old)
        if new in learner and learner[new] != value:
            raise ValueError(f"trainer.{old} moved to learner.{new}; both are set ({value!r} vs "
                             f"{learner[new]!r}): keep learner.{new} only")
        learner[new] = value
        _log.warning("config: trainer.%s is now learner.%s (read as learner.%s=%r)", old, new, new, value)
    return {**data, "trainer": trainer, "learner": learner}
