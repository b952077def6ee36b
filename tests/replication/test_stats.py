"""Paired bootstrap, detectable difference and within-group correlation."""

from __future__ import annotations

import numpy as np
import pytest

from videop2r.replication.stats import detectable, mean_sd, paired_difference, pooled_within_group_corr


def test_identical_arms_differ_by_zero_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(0)
    scores = (rng.random((3, 100)) < 0.5).astype(float)
    d = paired_difference("a", "b", scores, scores.copy(), replicates=300)
    assert d.mean == 0 and d.ci95 == (0.0, 0.0) and not d.seeds_agree


def test_a_real_difference_is_found_and_its_sign_agrees_across_seeds() -> None:
    rng = np.random.default_rng(1)
    b = (rng.random((3, 200)) < 0.4).astype(float)
    a = np.maximum(b, (rng.random((3, 200)) < 0.3).astype(float))  # a is right wherever b is, and more
    d = paired_difference("a", "b", a, b, replicates=500)
    assert d.mean > 0.1 and d.ci95[0] > 0 and d.seeds_agree
    assert d.as_dict()["detectable"] == pytest.approx(detectable(d.sd)) and 0 < detectable(d.sd) < d.mean


def test_noise_gives_an_interval_that_covers_zero() -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.random((3, 80)) < 0.5).astype(float), (rng.random((3, 80)) < 0.5).astype(float)
    lo, hi = paired_difference("a", "b", a, b, replicates=500).ci95
    assert lo < 0 < hi


def test_mismatched_shapes_are_an_error() -> None:
    with pytest.raises(ValueError, match="paired scores"):
        paired_difference("a", "b", np.zeros((3, 4)), np.zeros((2, 4)))


def test_mean_sd_and_pooled_correlation() -> None:
    assert mean_sd([0.5, 0.7]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert mean_sd([0.5]) == (0.5, 0.0)
    same = [([0, 1, 1, 0], [0, 1, 1, 0]), ([1, 0, 0, 0], [1, 0, 0, 0])]
    assert pooled_within_group_corr(same) == pytest.approx(1.0)
    # group means differ a lot but inside each group the rewards are unrelated: ρ near 0, not 1
    unrelated = [([0, 1, 0, 1], [0, 0, 1, 1]), ([5, 6, 5, 6], [5, 5, 6, 6])]
    assert pooled_within_group_corr(unrelated) == pytest.approx(0.0)
    assert pooled_within_group_corr([([1, 1], [0, 1])]) is None
