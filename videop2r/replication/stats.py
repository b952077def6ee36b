"""Paired bootstrap over seeds and items, and the smallest difference a design can detect.

Scores are arrays `(seeds, items)` of per-item accuracy on the same held-out items for two arms
(seed s of arm a and seed s of arm b start from the same SFT checkpoint). One bootstrap replicate
draws seeds with replacement and, independently, items with replacement — the same draw for both
arms, so the pairing is kept — and takes the mean difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5%, 80% power


@dataclass(frozen=True)
class Difference:
    a: str
    b: str
    mean: float
    ci95: tuple[float, float]
    sd: float  # bootstrap standard error of the mean difference
    seeds_agree: bool  # every seed's difference has the same (nonzero) sign
    per_seed: list[float]

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mean": self.mean, "ci95": list(self.ci95), "se": self.sd,
                "seeds_agree": self.seeds_agree, "per_seed": self.per_seed,
                "detectable": detectable(self.sd)}


def detectable(se: float) -> float:
    """Smallest true difference found with 80% power at 5% (two-sided) given standard error `se`."""
    return float((Z_ALPHA + Z_POWER) * se)


def paired_difference(a: str, b: str, scores_a: np.ndarray, scores_b: np.ndarray, replicates: int = 2000,
                      seed: int = 0) -> Difference:
    scores_a, scores_b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if scores_a.shape != scores_b.shape or scores_a.ndim != 2 or 0 in scores_a.shape:
        raise ValueError(f"paired scores must be (seeds, items) of one shape, got {scores_a.shape} and {scores_b.shape}")
    diff = scores_a - scores_b
    n_seeds, n_items = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    items = rng.integers(0, n_items, size=(replicates, n_items))
    # mean over drawn seeds of the mean over drawn items, vectorised per replicate
    boot = np.array([diff[np.ix_(s, i)].mean() for s, i in zip(seeds, items)])
    per_seed = diff.mean(axis=1)
    signs = np.sign(per_seed)
    agree = bool(signs[0] != 0 and np.all(signs == signs[0]))
    low, high = np.percentile(boot, [2.5, 97.5])
    return Difference(a, b, float(diff.mean()), (float(low), float(high)), float(boot.std(ddof=1)), agree,
                      [float(x) for x in per_seed])


def mean_sd(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, float)
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def pooled_within_group_corr(groups: list[tuple[list[float], list[float]]]) -> float | None:
    """corr(R_P, R_R) after removing each group's means: the share of outcome signal a perception
    token receives inside a group. None when either reward never varies inside a group."""
    xs, ys = [], []
    for p, r in groups:
        p, r = np.asarray(p, float), np.asarray(r, float)
        if p.size < 2:
            continue
        xs.append(p - p.mean())
        ys.append(r - r.mean())
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else None
