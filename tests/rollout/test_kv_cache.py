"""The in-place KV cache behaves like transformers' DynamicLayer, without the per-step copy."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from services.rollout.kv_cache import PreallocatedLayer, preallocated


def _pair(batch=3, length=5):
    return torch.randn(batch, 2, length, 4), torch.randn(batch, 2, length, 4)


def test_appends_match_dynamic_layer_and_write_in_place():
    keys, values = _pair()
    ours, reference = PreallocatedLayer(keys, values, capacity=8), DynamicLayer()
    reference.update(keys, values)
    storage = ours._keys.data_ptr()
    for _ in range(3):
        step = _pair(length=1)
        got, want = ours.update(*step), reference.update(*step)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert ours.get_seq_length() == reference.get_seq_length() == 8
    assert ours._keys.data_ptr() == storage  # no reallocation within capacity


def test_grows_past_capacity_and_selects_and_repeats_rows():
    keys, values = _pair()
    layer = PreallocatedLayer(keys, values, capacity=5)
    extra = _pair(length=2)
    layer.update(*extra)
    assert torch.equal(layer.keys, torch.cat([keys, extra[0]], dim=-2))
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, torch.cat([keys, extra[0]], dim=-2)[[2, 0]])
    layer.batch_repeat_interleave(2)
    assert layer.keys.shape[0] == 4 and torch.equal(layer.keys[0], layer.keys[1])
    layer.crop(3)
    assert layer.get_seq_length() == 3


def test_cache_wrapper_reports_lengths():
    cache = preallocated([_pair(), _pair()], capacity=10)
    assert cache.get_seq_length() == 5 and len(cache.layers) == 2
