"""Prefix-sharing decode attention equals plain attention over each row's full (repeated) KV."""

from __future__ import annotations

import torch

from services.rollout.shared_prefix import SharedPrefixLayer


def reference(query, prefix, suffix_keys, suffix_values, row):
    """SDPA of one row over [its prompt's prefix; its own suffix], GQA by repeating KV heads."""
    keys = torch.cat([prefix[0], suffix_keys[row]], dim=1)
    values = torch.cat([prefix[1], suffix_values[row]], dim=1)
    group = query.shape[1] // keys.shape[0]
    keys, values = keys.repeat_interleave(group, 0), values.repeat_interleave(group, 0)
    out = torch.nn.functional.scaled_dot_product_attention(query[row:row + 1], keys[None], values[None])
    return out[0, :, 0]  # (H, D)


def test_attention_matches_per_row_sdpa_across_prompts_of_different_lengths():
    torch.manual_seed(0)
    kv_heads, heads, dim = 2, 4, 8
    prefixes = [(torch.randn(kv_heads, 7, dim), torch.randn(kv_heads, 7, dim)),
                (torch.randn(kv_heads, 3, dim), torch.randn(kv_heads, 3, dim))]
    layer = SharedPrefixLayer(prefixes, [(0, 3), (3, 5)], capacity=4)
    suffix_k, suffix_v = [], []
    for _ in range(3):  # three decode steps
        step_k, step_v = torch.randn(5, kv_heads, 1, dim), torch.randn(5, kv_heads, 1, dim)
        layer.update(step_k, step_v)
        suffix_k.append(step_k)
        suffix_v.append(step_v)
    keys, values = torch.cat(suffix_k, 2), torch.cat(suffix_v, 2)
    query = torch.randn(5, heads, 1, dim)
    out = layer.attend(query, dim ** -0.5)
    assert out.shape == (5, 1, heads, dim)
    for row in range(5):
        prefix = prefixes[0] if row < 3 else prefixes[1]
        assert torch.allclose(out[row, 0], reference(query, prefix, keys, values, row), atol=1e-5)

    # finished rows leave: prompt groups are recounted, the rest is unchanged
    layer.batch_select_indices(torch.tensor([1, 4]))
    assert layer.groups == [(0, 1), (1, 2)] and layer.get_seq_length() == 3
    kept = layer.attend(query[[1, 4]], dim ** -0.5)
    assert torch.allclose(kept, out[[1, 4]], atol=1e-6)
    layer.batch_select_indices(torch.tensor([1]))
    assert layer.groups == [(0, 1)] and len(layer.prefixes) == 1
