"""Decode attention that reads a prompt's KV once for all n samples of that prompt.

After a prompt is prefilled once, its keys/values are the same for every one of its n samples.
Repeating them n times (what ``batch_repeat_interleave`` or a naive repeated prompt does) makes
every decode step stream n copies of a 1,000+-token video prompt through memory. Here each layer
keeps one prefix per prompt, ``(KV heads, L_j, head_dim)``, plus a small per-row suffix of the
generated tokens, and attention for a row is computed in two parts merged with a shared softmax
max (the "cascade"/prefix-sharing attention of SGLang's RadixAttention and FlashInfer):

    scores = [q·K_prefix, q·K_suffix] · scale,  out = softmax(scores) · [V_prefix; V_suffix]

The prefix part of all rows of a prompt is one matmul with the rows stacked as extra queries. No
padding exists (each prompt keeps its own length), so decode needs no attention mask.

Hooked into transformers through an attention function registered as ``ATTENTION_NAME``: it
runs this path while ``decoding(cache)`` is active on the calling thread and delegates to the
stock SDPA function otherwise (prefill, learner-style forwards: identical numerics to "sdpa").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

ATTENTION_NAME = "videop2r_shared_prefix"
_active = threading.local()


class SharedPrefixLayer(DynamicLayer):
    """One layer: a KV prefix per prompt and an in-place suffix buffer per row.

    prefixes: per prompt (keys, values), each (KVH, L_j, D). groups: per prompt, its rows
    [start, end) of the decode batch (rows of a prompt are contiguous)."""

    def __init__(self, prefixes: list[tuple[torch.Tensor, torch.Tensor]], groups: list[tuple[int, int]],
                 capacity: int) -> None:
        super().__init__()
        keys = prefixes[0][0]
        rows = groups[-1][1]
        self.prefixes = prefixes
        self.groups = groups
        self._keys = keys.new_empty(rows, keys.shape[0], capacity, keys.shape[-1])
        self._values = keys.new_empty(rows, keys.shape[0], capacity, prefixes[0][1].shape[-1])
        self.length = 0
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self.keys = self._keys[:, :, :0]
        self.values = self._values[:, :, :0]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        count = key_states.shape[-2]
        if self.length + count > self._keys.shape[2]:
            raise RuntimeError("shared-prefix cache is full: capacity was sized for max_new_tokens")
        self._keys[:, :, self.length: self.length + count] = key_states
        self._values[:, :, self.length: self.length + count] = value_states
        self.length += count
        self.keys = self._keys[:, :, : self.length]
        self.values = self._values[:, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (ascending): suffixes are selected, prompt groups recounted."""
        kept = indices.tolist()
        self._keys = self._keys[indices]
        self._values = self._values[indices]
        self.keys = self._keys[:, :, : self.length]
        self.values = self._values[:, :, : self.length]
        groups, prefixes, position = [], [], 0
        for (start, end), prefix in zip(self.groups, self.prefixes):
            count = sum(1 for row in kept if start <= row < end)
            if count:
                groups.append((position, position + count))
                prefixes.append(prefix)
                position += count
        self.groups, self.prefixes = groups, prefixes

    def attend(self, query: torch.Tensor, scale: float) -> torch.Tensor:
        """query (B, H, 1, D) -> attention output (B, 1, H, D) over prefix + suffix."""
        batch, heads, _, dim = query.shape
        kv_heads = self._keys.shape[1]
        group = heads // kv_heads  # query head h reads KV head h // group (repeat_kv's layout)
        q = query.reshape(batch, kv_heads, group, dim)
        suffix_scores = torch.matmul(q, self.keys.transpose(-1, -2)) * scale  # (B, k, g, t)
        out = torch.empty(batch, kv_heads, group, self._values.shape[-1], dtype=query.dtype, device=query.device)
        for (start, end), (prefix_keys, prefix_values) in zip(self.groups, self.prefixes):
            rows = end - start
            length = prefix_keys.shape[1]
            # the prompt's rows as extra queries of one matmul per KV head: (k, r·g, D) x (k, D, L)
            stacked = q[start:end].transpose(0, 1).reshape(kv_heads, rows * group, dim)
            prefix_scores = torch.matmul(stacked, prefix_keys.transpose(-1, -2)).mul_(scale)
            prefix_scores = prefix_scores.view(kv_heads, rows, group, length).transpose(0, 1)  # (r, k, g, L)
            own_scores = suffix_scores[start:end]  # (r, k, g, t)
            peak = torch.maximum(prefix_scores.amax(-1, keepdim=True), own_scores.amax(-1, keepdim=True))
            prefix_weights = (prefix_scores - peak).exp_()
            own_weights = (own_scores - peak).exp_()
            total = prefix_weights.sum(-1, keepdim=True) + own_weights.sum(-1, keepdim=True)
            mixed = torch.matmul(prefix_weights.transpose(0, 1).reshape(kv_heads, rows * group, length), prefix_values)
            mixed = mixed.view(kv_heads, rows, group, -1).transpose(0, 1)  # (r, k, g, D)
            mixed = mixed + torch.matmul(own_weights, self.values[start:end])
            out[start:end] = mixed / total
        return out.reshape(batch, heads, -1).unsqueeze(1)


def shared_prefix_cache(prefill_caches: list[Any], rows_per_prompt: list[int], capacity: int) -> DynamicCache:
    """A decode cache over batch-1 prefill caches (one per prompt), `rows_per_prompt` rows each,
    room for `capacity` generated tokens per row."""
    groups, start = [], 0
    for count in rows_per_prompt:
        groups.append((start, start + count))
        start += count
    cache = DynamicCache()
    cache.layers = [
        SharedPrefixLayer([(c.layers[index].keys[0], c.layers[index].values[0]) for c in prefill_caches],
                          list(groups), capacity)
        for index in range(len(prefill_caches[0].layers))
    ]
    return cache


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, **kwargs: Any):
    cache = getattr(_active, "cache", None)
    if cache is None or query.shape[2] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scale = kwargs.get("scaling") or query.shape[-1] ** -0.5
    return cache.layers[module.layer_idx].attend(query, scale), None


def install(model: Any) -> None:
    """Route `model`'s language-model attention through this module (vision tower untouched)."""
    AttentionInterface.register(ATTENTION_NAME, _attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    text_config = model.config.text_config
    text_config._attn_implementation = ATTENTION_NAME
    for module in model.model.language_model.modules():
        config = getattr(module, "config", None)
        if config is not None and config is not text_config and getattr(config, "model_type", "").endswith("_text"):
            config._attn_implementation = ATTENTION_NAME


@contextlib.contextmanager
def decoding(cache: DynamicCache) -> Iterator[None]:
    """Decode steps on this thread attend through `cache`'s shared prefixes."""
    _active.cache = cache
    try:
        yield
    finally:
        _active.cache = None
