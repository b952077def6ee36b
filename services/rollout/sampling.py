"""Next-token sampling with SGLang's semantics, per row of a decode batch.

Order of operations (SGLang ``Sampler``): logit bias and hard masks (vision placeholder tokens,
EOS before ``min_new_tokens``) are added to the raw logits; the result is divided by the row's
temperature; **the returned log-prob of the sampled token is ``log_softmax`` of that scaled
distribution, before top-k / top-p / min-p filtering** (SGLang's default; its
``SGLANG_RETURN_ORIGINAL_LOGPROB`` mode would return the unscaled one instead); the token is then
drawn from the filtered, renormalised distribution. Greedy rows (temperature < 1e-6) take the
argmax and report ``log_softmax`` of the unscaled logits, as SGLang does (temperature 1, top-k 1).

A learner that wants ratio 1 on-policy computes ``log_softmax(logits / temperature)`` over the
same tokens — verl's convention too — with the vision placeholder ids masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GREEDY_EPS = 1e-6


@dataclass(frozen=True)
class RowSampling:
    """Sampling settings of one decode row (one of the n samples of a request)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_EPS


def sample_next(logits: torch.Tensor, groups: list[tuple[torch.Tensor, RowSampling, torch.Generator | None]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row of a decode batch.

    logits: (B, V), already biased/masked. groups: (row indices (k,), settings, generator) — the
    rows of one request share settings and a generator, so a seeded request draws the same tokens
    whatever else shares its batch.
    Returns (tokens (B,) long, logprobs (B,) float32) with the semantics of the module docstring.
    """
    logits = logits.float()
    temperatures = torch.ones(logits.shape[0], device=logits.device)
    for rows, setting, _ in groups:
        if not setting.greedy:
            temperatures[rows] = setting.temperature
    scaled = logits / temperatures[:, None]
    logprobs_all = torch.log_softmax(scaled, dim=-1)
    tokens = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    for rows, setting, generator in groups:
        if setting.greedy:
            tokens[rows] = torch.argmax(scaled[rows], dim=-1)
        else:
            probs = filtered_probs(logprobs_all[rows], setting)
            tokens[rows] = torch.multinomial(probs, 1, generator=generator)[:, 0]
    chosen = logprobs_all.gather(1, tokens[:, None])[:, 0]
    return tokens, chosen


def filtered_probs(logprobs: torch.Tensor, setting: RowSampling) -> torch.Tensor:
    """Top-k, then top-p, then min-p filtering: logprobs (k, V) -> renormalised probs (k, V)."""
    probs = logprobs.exp()
    if 0 < setting.top_k < probs.shape[-1]:
        kth = torch.topk(probs, setting.top_k, dim=-1).values[:, -1:]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    if setting.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # keep the smallest prefix whose mass reaches top_p (the most likely token always stays)
        drop = (cumulative - sorted_probs) >= setting.top_p * cumulative[:, -1:]
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    if setting.min_p > 0.0:
        probs = torch.where(probs >= setting.min_p * probs.amax(dim=-1, keepdim=True), probs, torch.zeros_like(probs))
    total = probs.sum(dim=-1, keepdim=True)
    dead = ~(torch.isfinite(total) & (total > 0))[:, 0]
    if dead.any():
        # every token filtered or masked: fall back to the argmax of the unfiltered distribution
        probs[dead] = torch.nn.functional.one_hot(torch.argmax(logprobs[dead], dim=-1), probs.shape[-1]).to(probs)
        total = probs.sum(dim=-1, keepdim=True)
    return probs / total
