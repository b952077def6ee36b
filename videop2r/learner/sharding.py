"""Process group, device and FSDP2 sharding of a learner worker: CUDA/NCCL or CPU/gloo, same code."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(requested: str) -> torch.device:
    """`cuda` (this actor's GPU: Ray exposes one per worker) or `cpu`; "auto" takes a GPU if there is one."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("learner.device=cuda but this worker sees no CUDA device")
        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def init_distributed(device: torch.device, timeout_s: float) -> DeviceMesh:
    """Join the worker group's process group (env:// from the Ray worker env) and return a 1-D mesh.

    The timeout bounds every collective, so a peer that hangs turns into an error, not a wait forever.
    """
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return init_device_mesh(device.type, (dist.get_world_size(),), mesh_dim_names=("dp",))


def shard_model(model: nn.Module, mesh: DeviceMesh, param_dtype: torch.dtype, offload: bool = False) -> nn.Module:
    """FSDP2-shard every block HF marks as unsplittable (decoder layers, vision blocks), then the root.

    Master weights stay in the model's dtype (float32 for training); `param_dtype` is the compute dtype.
    Tied input/output embeddings live in the root unit, so they stay tied. `offload`: shards live on
    the CPU and are copied to the GPU per unit for each use (the frozen reference).
    """
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    offload_policy = CPUOffloadPolicy(pin_memory=True) if offload else OffloadPolicy()
    block_names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [module for module in model.modules() if type(module).__name__ in block_names]
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no blocks to shard (_no_split_modules is empty)")
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy, offload_policy=offload_policy)
    fully_shard(model, mesh=mesh, mp_policy=policy, offload_policy=offload_policy)
    return model
