"""Sampling semantics: SGLang's log-probs (temperature-scaled, before top-p/top-k), filters, seeds."""

from __future__ import annotations

import torch

from services.rollout.sampling import RowSampling, filtered_probs, sample_next

LOGITS = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]])


def _group(rows, setting, generator=None):
    return [(torch.arange(rows), setting, generator)]


def test_logprob_is_of_the_temperature_scaled_distribution_before_filtering():
    setting = RowSampling(temperature=0.7, top_p=0.5, top_k=2)
    tokens, logprobs = sample_next(LOGITS, _group(1, setting, torch.Generator().manual_seed(0)))
    expected = torch.log_softmax(LOGITS / 0.7, dim=-1)[0, tokens[0]]
    assert torch.allclose(logprobs[0], expected)


def test_greedy_takes_the_argmax_with_the_unscaled_logprob():
    tokens, logprobs = sample_next(LOGITS, _group(1, RowSampling(temperature=0.0)))
    assert tokens.tolist() == [0]
    assert torch.allclose(logprobs[0], torch.log_softmax(LOGITS, -1)[0, 0])


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    probs = filtered_probs(torch.log_softmax(LOGITS, -1), RowSampling(top_p=0.7))
    kept = (probs[0] > 0).nonzero().flatten().tolist()
    softmax = torch.softmax(LOGITS, -1)[0]
    assert softmax[0] < 0.7 <= softmax[0] + softmax[1]
    assert kept == [0, 1]
    assert torch.allclose(probs.sum(), torch.tensor(1.0))


def test_top_k_and_min_p():
    assert (filtered_probs(torch.log_softmax(LOGITS, -1), RowSampling(top_k=3))[0] > 0).sum() == 3
    min_p = filtered_probs(torch.log_softmax(LOGITS, -1), RowSampling(min_p=0.3))
    softmax = torch.softmax(LOGITS, -1)[0]
    assert ((min_p[0] > 0) == (softmax >= 0.3 * softmax.max())).all()


def test_masked_tokens_are_never_drawn_and_samples_follow_the_distribution():
    logits = torch.zeros(4000, 5)
    logits[:, 3] = float("-inf")
    tokens, logprobs = sample_next(logits, _group(4000, RowSampling(), torch.Generator().manual_seed(1)))
    counts = torch.bincount(tokens, minlength=5).float() / 4000
    assert counts[3] == 0
    assert torch.allclose(counts[[0, 1, 2, 4]], torch.full((4,), 0.25), atol=0.03)
    assert torch.allclose(logprobs, torch.full((4000,), float(torch.log(torch.tensor(0.25)))))


def test_seeded_generators_repeat_and_groups_do_not_interfere():
    logits = torch.randn(6, 50)
    first = sample_next(logits, [(torch.arange(3), RowSampling(), torch.Generator().manual_seed(5)),
                                 (torch.arange(3, 6), RowSampling(temperature=0.5), torch.Generator().manual_seed(9))])
    alone = sample_next(logits[:3], [(torch.arange(3), RowSampling(), torch.Generator().manual_seed(5))])
    assert first[0][:3].tolist() == alone[0].tolist()


def test_everything_filtered_falls_back_to_the_argmax():
    logits = torch.full((1, 4), float("-inf"))
    logits[0, 2] = 0.0
    probs = filtered_probs(torch.log_softmax(logits, -1), RowSampling(min_p=1.0, top_p=0.01))
    assert probs[0].tolist() == [0.0, 0.0, 1.0, 0.0]
