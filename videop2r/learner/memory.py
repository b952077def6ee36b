"""Memory plan of the learner: bytes per GPU and per host, by component, for a model and a config.

The model's shape comes from its `Qwen2_5_VLConfig` (parameters counted on the meta device, no
weights). Per GPU (FSDP2 over N workers, fp32 masters, AdamW):

    parameters 4P/N, gradients 4P/N, optimizer 8P/N (exp_avg, exp_avg_sq), reference r·P/N
    (r = 2 for bf16; on the host when offloaded), buffers: the root unit and the two largest blocks
    unsharded in the compute dtype plus one block's fp32 gradient before its reduce-scatter,
    activations and logits of the largest micro-batch (below), and a fixed runtime reserve
    (CUDA context, NCCL, allocator: 2 GB; 0 on CPU).

Activations per token and decoder layer, in compute-dtype elements: 8H + 4·kv + 4I (norm outputs,
q/k/v and their rotary copies, attention output, MLP gate/up/activation/product) plus two fp32
norm inputs; with checkpointing only the layer input (H) is kept per layer and one layer's full
set is live during its recompute. The vision tower the same per patch and block, with its own
sizes. Logits: response tokens × vocab × (compute-dtype lm_head output + 4 fp32 copies: upcast,
/temperature, blocked-id fill, log-sum-exp; the backward holds one more) bytes.

Host (per node): the rank-0 load streams the checkpoint, so it holds the largest tensor in flight
(its file pages and its fp32 chunks) rather than a full copy, plus a runtime reserve per worker
process and the offloaded reference shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GB = 1024**3
#: CUDA context + NCCL + allocator slack per GPU worker (bytes)
GPU_RESERVE = 2 * GB
#: torch + CUDA + Ray runtime of one worker process on the host (bytes)
HOST_RESERVE_PER_WORKER = 3 * GB

#: architectures of the checkpoints users name by size (HF config.json of Qwen2.5-VL-*-Instruct)
KNOWN_SHAPES: dict[str, dict[str, Any]] = {
    "7b": {"text_config": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                           "tie_word_embeddings": False},
           "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                             "out_hidden_size": 3584}, "tie_word_embeddings": False},
    "3b": {"text_config": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                           "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
                           "tie_word_embeddings": True},
           "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                             "out_hidden_size": 2048}, "tie_word_embeddings": True},
}


@dataclass(frozen=True)
class ModelShape:
    params: int
    hidden: int
    intermediate: int
    layers: int
    kv_dim: int
    vocab: int
    vision_hidden: int
    vision_intermediate: int
    vision_depth: int
    #: parameters of the largest FSDP block and of the root unit (embeddings, lm_head, patch embed, merger)
    largest_block: int
    root_unit: int
    #: elements of the largest single tensor (the embedding or lm_head): what rank 0 stages at once
    largest_tensor: int = 0


def model_shape(config: Any) -> ModelShape:
    """The shape of a Qwen2.5-VL of `config` (counted on the meta device: no memory)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config)
    names = set(model._no_split_modules or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    params = {id(p): p.numel() for p in model.parameters()}
    text, vision = config.text_config, config.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    return ModelShape(
        params=sum(params.values()), hidden=text.hidden_size, intermediate=text.intermediate_size,
        layers=text.num_hidden_layers, kv_dim=text.num_key_value_heads * head_dim, vocab=text.vocab_size,
        vision_hidden=vision.hidden_size, vision_intermediate=vision.intermediate_size, vision_depth=vision.depth,
        largest_block=max(sum(p.numel() for p in b.parameters()) for b in blocks),
        root_unit=sum(n for key, n in params.items() if key not in in_blocks),
        largest_tensor=max(params.values()),
    )


def known_config(name: str) -> Any:
    """The `Qwen2_5_VLConfig` of a checkpoint named like Qwen2.5-VL-7B-Instruct (by its size), or None."""
    from transformers import Qwen2_5_VLConfig

    lowered = name.lower().replace("_", "-")
    for size, tree in KNOWN_SHAPES.items():
        if f"-{size}" in lowered:
            return Qwen2_5_VLConfig(**tree)
    return None


@dataclass(frozen=True)
class PlanInputs:
    workers: int
    gpus_per_node: int = 8
    gpu_memory_gb: float = 80.0
    device: str = "cuda"
    compute_bytes: int = 2
    reference_bytes: int = 2  # 0 = no reference (KL off)
    reference_offload: bool = False
    checkpointing: bool = True
    #: tokens (prompt + response, padding included) and response tokens of the largest micro-batch
    tokens: int = 4096
    response_tokens: int = 1024
    #: vision patches in that micro-batch (4 per merged vision token)
    vision_patches: int = 0


@dataclass
class Plan:
    per_gpu: dict[str, float] = field(default_factory=dict)  # bytes
    per_host: dict[str, float] = field(default_factory=dict)
    peak_gpu: float = 0.0
    peak_host: float = 0.0
    fits: bool = False
    max_tokens: int = 0


def activation_bytes(shape: ModelShape, inputs: PlanInputs) -> float:
    b = inputs.compute_bytes
    layer = (8 * shape.hidden + 4 * shape.kv_dim + 4 * shape.intermediate) * b + 2 * shape.hidden * 4
    block = (8 * shape.vision_hidden + 4 * shape.vision_intermediate) * b + 2 * shape.vision_hidden * 4
    if inputs.checkpointing:
        text = inputs.tokens * (shape.layers * shape.hidden * b + layer)
        vision = inputs.vision_patches * (shape.vision_depth * shape.vision_hidden * b + block)
    else:
        text = inputs.tokens * shape.layers * layer
        vision = inputs.vision_patches * shape.vision_depth * block
    return float(text + vision)


def logits_bytes(shape: ModelShape, inputs: PlanInputs) -> float:
    return float(inputs.response_tokens * shape.vocab * (inputs.compute_bytes + 5 * 4))


def plan_memory(shape: ModelShape, inputs: PlanInputs) -> Plan:
    """The plan of `inputs` (see the module docstring); `max_tokens` = the largest micro-batch that fits."""
    n, p = inputs.workers, shape.params
    fixed = _fixed_gpu(shape, inputs)
    gpu = {
        **{key: fixed[key] for key in ("parameters", "gradients", "optimizer", "reference")},
        "activations": activation_bytes(shape, inputs),
        "logits": logits_bytes(shape, inputs),
        "buffers": fixed["buffers"],
    }
    local = min(inputs.gpus_per_node, n)
    host = {
        # the tensor being scattered: its checkpoint pages (<= 4 B an element) and its fp32 chunks
        "rank0_staging": (4.0 + 4.0) * shape.largest_tensor,
        "worker_runtime": float(HOST_RESERVE_PER_WORKER * local),
        "reference_offload": inputs.reference_bytes * p / n * local if inputs.reference_offload else 0.0,
    }
    plan = Plan(gpu, host, sum(gpu.values()), sum(host.values()))
    plan.fits = plan.peak_gpu <= inputs.gpu_memory_gb * GB
    plan.max_tokens = _max_tokens(shape, inputs)
    return plan


def _max_tokens(shape: ModelShape, inputs: PlanInputs) -> int:
    """Largest token budget (same response and vision shares as `inputs`) whose peak fits the GPU."""
    from dataclasses import replace

    share_r = inputs.response_tokens / max(inputs.tokens, 1)
    share_v = inputs.vision_patches / max(inputs.tokens, 1)

    def fits(tokens: int) -> bool:
        trial = replace(inputs, tokens=tokens, response_tokens=int(tokens * share_r),
                        vision_patches=int(tokens * share_v))
        gpu = plan_fixed(shape, trial) + activation_bytes(shape, trial) + logits_bytes(shape, trial)
        return gpu <= inputs.gpu_memory_gb * GB

    low, high = 0, 1 << 22
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _fixed_gpu(shape: ModelShape, inputs: PlanInputs) -> dict[str, float]:
    """Per-GPU bytes that do not grow with the micro-batch, by what holds them."""
    n, p = inputs.workers, shape.params
    return {
        "parameters": 4 * p / n,
        "gradients": 4 * p / n,
        "optimizer": 8 * p / n,
        "reference": 0.0 if inputs.reference_offload else inputs.reference_bytes * p / n,
        "buffers": float((shape.root_unit + 2 * shape.largest_block) * inputs.compute_bytes
                         + 4 * shape.largest_block + (GPU_RESERVE if inputs.device == "cuda" else 0)),
    }


def plan_fixed(shape: ModelShape, inputs: PlanInputs) -> float:
    """Per-GPU bytes that do not grow with the micro-batch."""
    return sum(_fixed_gpu(shape, inputs).values())
