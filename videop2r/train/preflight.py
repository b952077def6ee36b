"""`videop2r config check` and `videop2r plan`: is a config usable, and does its learner fit?

`config_problems` collects every problem instead of stopping at the first, each naming the field:
the consistency rules of both stages (`run.check_config` for SFT and PA-GRPO), the form of every
path (and with `check_paths`, that local ones exist), the attention implementation, the token
budget against the longest row, and — for a CUDA learner — the memory plan against the GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videop2r.config import ConfigError, VideoP2RConfig
from videop2r.learner.memory import GB, Plan, PlanInputs, known_config, model_shape, plan_memory

STAGES = ("sft", "pa_grpo")
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Sizing:
    inputs: PlanInputs
    plan: Plan
    model: str


def _paths(config: VideoP2RConfig) -> dict[str, str]:
    return {"model.path": config.model.path, "data.train_uri": config.data.train_uri,
            "data.eval_uri": config.data.eval_uri or "", "trainer.sft.data_uri": config.trainer.sft.data_uri,
            "trainer.reference_path": config.trainer.reference_path, "storage.uri": config.storage.uri}


def longest_prompt(config: VideoP2RConfig) -> int:
    """Prompt tokens of the largest video or image the data section lets through (+ 256 of text)."""
    if config.learner.max_prompt_tokens:
        return config.learner.max_prompt_tokens
    frames = config.data.nframes or config.data.max_frames
    video = (frames + 1) // 2 * (config.data.video_max_pixels // (28 * 28))
    image = config.data.image_max_pixels // (28 * 28)
    return max(video, image) + 256


def plan_inputs(config: VideoP2RConfig, gpus_per_node: int = 8, gpu_memory_gb: float = 80.0) -> PlanInputs:
    learner, trainer = config.learner, config.trainer
    rows = trainer.micro_batch_size
    response = config.rollout.max_new_tokens
    tokens = learner.max_tokens_per_micro_batch or rows * (longest_prompt(config) + response)
    responses = min(tokens, rows * response)
    return PlanInputs(
        workers=learner.num_workers, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb,
        device="cpu" if learner.device == "cpu" else "cuda", compute_bytes=_DTYPE_BYTES[config.model.dtype],
        reference_bytes=0 if config.algorithm.kl_coef == 0 else _DTYPE_BYTES[learner.reference_dtype],
        reference_offload=learner.reference_offload, checkpointing=learner.gradient_checkpointing,
        tokens=tokens, response_tokens=responses,
        vision_patches=4 * (tokens - responses),  # worst case: every prompt token a merged vision token
    )


def model_config_of(config: VideoP2RConfig, model_dir: str | None = None) -> tuple[Any, str]:
    """The Qwen2.5-VL config to size: `model_dir`, a local model.path, or a known size in its name."""
    from transformers import AutoConfig

    for candidate in (model_dir, config.model.path):
        if candidate and (Path(candidate) / "config.json").is_file():
            return AutoConfig.from_pretrained(candidate, local_files_only=True), str(candidate)
    known = known_config(config.model.path)
    if known is None:
        raise ConfigError(f"config error: model.path: cannot size {config.model.path!r} (no local config.json "
                          "and no known size such as 7B/3B in its name); pass --model-config DIR")
    return known, f"{config.model.path} (known architecture)"


def size_learner(config: VideoP2RConfig, gpus_per_node: int = 8, gpu_memory_gb: float = 80.0,
                 model_dir: str | None = None) -> Sizing:
    model, name = model_config_of(config, model_dir)
    inputs = plan_inputs(config, gpus_per_node, gpu_memory_gb)
    return Sizing(inputs, plan_memory(model_shape(model), inputs), name)


def config_problems(config: VideoP2RConfig, *, check_paths: bool = False, gpus_per_node: int = 8,
                    gpu_memory_gb: float = 80.0) -> list[str]:
    """Every problem of `config` for both stages, one line each, naming the field."""
    from videop2r.learner.settings import flash_attention_available
    from videop2r.train.run import check_config

    problems: list[str] = []
    for stage in STAGES:
        try:
            check_config(config, stage)
        except ConfigError as exc:
            line = f"{exc} [{stage}]"
            if str(exc) not in {p.rsplit(" [", 1)[0] for p in problems}:
                problems.append(line)
    for field, value in _paths(config).items():
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/", 1)[0]:
            problems.append(f"config error: {field}: {value!r} names no bucket")
        elif check_paths and value and "://" not in value and not Path(value).exists():
            problems.append(f"config error: {field}: {value} does not exist")
    if config.model.attn_implementation == "flash_attention_2" and not flash_attention_available():
        problems.append("config error: model.attn_implementation: flash_attention_2 needs the flash_attn "
                        "package, which is not installed; use sdpa")
    learner = config.learner
    longest = longest_prompt(config) + config.rollout.max_new_tokens
    # with max_prompt_tokens set, `longest` is exactly max_prompt_tokens + max_new_tokens
    if learner.max_tokens_per_micro_batch and learner.max_prompt_tokens and longest > learner.max_tokens_per_micro_batch:
        problems.append(f"config error: learner.max_tokens_per_micro_batch: {learner.max_tokens_per_micro_batch} is "
                        f"less than the longest row (learner.max_prompt_tokens + rollout.max_new_tokens = "
                        f"{longest}): such rows would be dropped")
    if learner.device == "cuda":
        try:
            sizing = size_learner(config, gpus_per_node, gpu_memory_gb)
        except ConfigError as exc:
            problems.append(str(exc))
        else:
            if not sizing.plan.fits:
                problems.append(f"config error: learner: the plan needs {sizing.plan.peak_gpu / GB:.1f} GB per GPU, "
                                f"more than {gpu_memory_gb:g} GB (lower learner.max_tokens_per_micro_batch "
                                f"below {sizing.plan.max_tokens}, or turn on learner.gradient_checkpointing)")
    return problems


def plan_table(sizing: Sizing) -> list[str]:
    """The plan as text lines; the last is `peak_gpu_gb=<x> peak_host_gb=<y> fits=<true|false>`."""
    inputs, plan = sizing.inputs, sizing.plan
    lines = [f"model: {sizing.model}",
             f"learner: {inputs.workers} workers, {inputs.gpus_per_node} GPUs per node, {inputs.gpu_memory_gb:g} GB "
             f"each; micro-batch {inputs.tokens} tokens ({inputs.response_tokens} response, {inputs.vision_patches} "
             f"vision patches at most); checkpointing {'on' if inputs.checkpointing else 'off'}",
             f"{'per GPU':<22}{'GB':>10}"]
    lines += [f"  {name:<20}{value / GB:>10.2f}" for name, value in plan.per_gpu.items()]
    lines += [f"  {'total':<20}{plan.peak_gpu / GB:>10.2f}", f"{'per host (rank 0)':<22}{'GB':>10}"]
    lines += [f"  {name:<20}{value / GB:>10.2f}" for name, value in plan.per_host.items()]
    lines += [f"  {'total':<20}{plan.peak_host / GB:>10.2f}",
              f"largest micro-batch that fits: {plan.max_tokens} tokens",
              f"peak_gpu_gb={plan.peak_gpu / GB:.2f} peak_host_gb={plan.peak_host / GB:.2f} "
              f"fits={'true' if plan.fits else 'false'}"]
    return lines
