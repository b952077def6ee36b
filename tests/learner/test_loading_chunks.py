"""Rank 0's split of a checkpoint tensor is FSDP2's own split (torch 2.14.1,
torch/distributed/fsdp/_fully_shard/_fsdp_common.py `_chunk_with_empty`), padded for the scatter."""

from __future__ import annotations

import pytest
import torch
from torch.distributed.fsdp._fully_shard._fsdp_common import _chunk_with_empty

from videop2r.learner.loading import _dim0_chunks, _padded


@pytest.mark.parametrize(("rows", "world"), [(5, 4), (1, 4), (8, 4), (7, 3), (0, 2), (152, 8)])
def test_the_split_is_fsdp2s_and_padding_keeps_the_rows(rows: int, world: int) -> None:
    tensor = torch.arange(rows * 3, dtype=torch.float32).reshape(rows, 3)
    ours, fsdp = _dim0_chunks(tensor, world), _chunk_with_empty(tensor, world, dim=0)
    assert len(ours) == len(fsdp) == world
    for mine, theirs in zip(ours, fsdp):
        assert mine.numel() == theirs.numel() and (mine.numel() == 0 or torch.equal(mine, theirs))
    size = -(-rows // world)
    for chunk in ours:
        padded = _padded(chunk, size)
        assert padded.shape == (size, 3) and padded.is_contiguous()
        assert torch.equal(padded[: chunk.shape[0]], chunk) and not padded[chunk.shape[0]:].any()
