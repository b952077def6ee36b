"""Load a checkpoint into FSDP2 shards, streamed from rank 0: rank 0 reads, every rank keeps its slice.

`learner.load = rank0` (default): every rank builds the model on the meta device (no memory),
shards it (`fully_shard`) and allocates only its shards (`to_empty`). Rank 0 maps the checkpoint
in its own dtype (nothing is read yet) and scatters each tensor in FSDP2's dim-0 chunks, converted
to the kept dtype chunk by chunk: every rank receives only its slice, and rank 0 drops a source
tensor's pages once it has been sent. (torch's `set_model_state_dict(..., broadcast_from_rank0=True)`
needs the full copy resident on rank 0 and a full-size receive buffer on every rank.) Buffers
(rotary `inv_freq`, computed at init) are broadcast. Host memory: the shards plus one tensor in
flight — `load_ratio` ≈ 1.3 at N = 4 in bench/learner_memory.py, where `every_rank` (each rank
reads the whole checkpoint, then keeps its shard) gives ≈ N. The same code runs on gloo/CPU and
NCCL/CUDA.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor

from videop2r.learner.logprob import install_forward
from videop2r.learner.sharding import shard_model

log = logging.getLogger(__name__)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _meta_model(config: Any, dtype: torch.dtype, attn_implementation: str) -> nn.Module:
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype,
                                                                 attn_implementation=attn_implementation)
    return model.eval()


_MADV_DONTNEED = 4
_PAGE = 4096


def _drop_pages(tensor: torch.Tensor) -> None:
    """Hand the whole pages of `tensor`'s (CPU) storage back to the OS: it is read for the last time.

    The source tensors are mapped from the checkpoint file, so the pages of one that was read stay
    resident (and counted) until the file is closed; a full copy would build up. Dropped pages of a
    file mapping read back from the file; of anonymous memory, as zeros — hence after the last use only.
    """
    storage = tensor.untyped_storage()
    if tensor.device.type != "cpu" or storage.nbytes() < 2 * _PAGE:
        return
    start = -(-storage.data_ptr() // _PAGE) * _PAGE
    end = (storage.data_ptr() + storage.nbytes()) // _PAGE * _PAGE
    if end > start:
        try:
            ctypes.CDLL("libc.so.6").madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)
        except (OSError, AttributeError):  # not glibc/Linux: the pages go when the file closes
            pass


def _dim0_chunks(tensor: torch.Tensor, world: int) -> list[torch.Tensor]:
    """FSDP2's split of a parameter: `torch.chunk` on dim 0, then empty chunks so every rank has one."""
    chunks = list(torch.chunk(tensor, world, dim=0))
    return chunks + [tensor[:0]] * (world - len(chunks))


def _padded(chunk: torch.Tensor, rows: int) -> torch.Tensor:
    if chunk.shape[0] < rows:
        chunk = torch.cat([chunk, chunk.new_zeros((rows - chunk.shape[0], *chunk.shape[1:]))])
    return chunk.contiguous()


def scatter_from_rank0(model: nn.Module, full: dict[str, torch.Tensor], device: torch.device) -> None:
    """Fill every rank's FSDP2 shards from rank 0's full state dict `full` (empty on the other ranks).

    A sharded parameter is split as FSDP2 splits it (`torch.chunk` on dim 0, the last ranks possibly
    empty), each chunk padded to the first chunk's size for the collective; buffers are broadcast.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    sharded = [(name, value) for name, value in model.state_dict().items() if isinstance(value, DTensor)]
    # the last key that reads each source storage (tied embeddings share one): its pages go after it
    last_use = {full[name].untyped_storage().data_ptr(): name for name, _ in sharded} if rank == 0 else {}
    with torch.no_grad():
        for name, value in sharded:
            local = value.to_local()
            rows = -(-value.shape[0] // world)  # torch.chunk's chunk size
            received = torch.empty((rows, *value.shape[1:]), dtype=local.dtype, device=device)
            chunks = None
            if rank == 0:
                source = full[name]
                if tuple(source.shape) != tuple(value.shape):
                    raise ValueError(f"{name}: checkpoint shape {tuple(source.shape)}, model {tuple(value.shape)}")
                # NCCL sends CUDA tensors only; the shorter last chunks are padded for the collective
                chunks = [_padded(part.to(device=device, dtype=local.dtype), rows) for part in _dim0_chunks(source, world)]
            dist.scatter(received, chunks, src=0)
            local.copy_(received[: local.shape[0]])
            if rank == 0 and last_use.get(full[name].untyped_storage().data_ptr()) == name:
                _drop_pages(full[name])
        for buffer in model.buffers():  # rotary inv_freq (computed at init, not in the dict) and the rest
            staged = buffer.data.to(device)  # NCCL broadcasts CUDA tensors only
            dist.broadcast(staged, src=0)
            if staged is not buffer.data:
                buffer.data.copy_(staged)


def load_sharded_model(local_dir: Path | None, config: Any, mesh: DeviceMesh, device: torch.device, *,
                       dtype: torch.dtype, param_dtype: torch.dtype, attn_implementation: str,
                       load: str = "rank0", gradient_checkpointing: bool = False,
                       offload: bool = False) -> nn.Module:
    """An FSDP2-sharded Qwen2.5-VL of the checkpoint at `local_dir` (needed on rank 0 only with rank0).

    `config`: the checkpoint's `Qwen2_5_VLConfig` (the meta ranks build from it). `dtype`: the
    weights kept (fp32 masters for the policy, bf16 for the reference); `param_dtype`: compute dtype.
    `offload`: keep the shards on the CPU between uses (FSDP2 CPUOffloadPolicy; CUDA only).
    """
    from videop2r.model import load_model

    rank = dist.get_rank()
    if (load == "every_rank" or rank == 0) and local_dir is None:
        raise ValueError(f"rank {rank} must read the checkpoint but has no local copy")
    source = None
    if load == "every_rank":
        model = load_model(local_dir, dtype=str(dtype).removeprefix("torch."), device="cpu",
                           attn_implementation=attn_implementation)
    else:
        # every rank builds on meta and allocates only its shards; rank 0 maps the checkpoint in its
        # own dtype (nothing read yet) and converts chunk by chunk while scattering
        model = _meta_model(config, dtype, attn_implementation)
        if rank == 0:
            source = load_model(local_dir, dtype="auto", device="cpu", attn_implementation=attn_implementation)
    if gradient_checkpointing:
        # non-reentrant: recomputes inside FSDP2's backward hooks without a second all-gather pass
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    shard_model(model, mesh, param_dtype, offload=offload and device.type == "cuda")
    if load == "rank0":
        model.to_empty(device="cpu" if offload and device.type == "cuda" else device)
        full: dict[str, torch.Tensor] = {}
        if source is not None:
            computed = dict(source.named_buffers())  # rotary inv_freq: computed at init, not in the file
            with torch.no_grad():
                for name, buffer in model.named_buffers():
                    buffer.copy_(computed[name])
            full = source.state_dict()
            # the key renamings from_pretrained applied: the export writes the checkpoint's own layout back
            if hasattr(source, "_weight_conversions"):
                model._weight_conversions = source._weight_conversions
        scatter_from_rank0(model, full, device)
        full.clear()
        del source
    release_memory()
    install_forward(model)
    return model
