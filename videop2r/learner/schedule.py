"""Learning-rate schedules with linear warmup (one scheduler step per training step).

The formulas are verl's `get_cosine_schedule_with_warmup` / `get_constant_schedule_with_warmup`
(0-indexed steps), written out here so the actor core imports with torch alone (bench/gpu_smoke.py).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def build_lr_schedule(optimizer: Optimizer, kind: str, warmup_steps: int, total_steps: int,
                      min_lr_ratio: float = 0.0) -> LambdaLR:
    """cosine (to `min_lr_ratio`·lr at `total_steps`), constant, or linear (to 0), after `warmup_steps`."""
    def warmup(step: int) -> float:
        return step / max(1, warmup_steps)

    if kind == "cosine":
        def cosine(step: int) -> float:
            if step < warmup_steps:
                return warmup(step)
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            x = math.cos(math.pi * progress)
            return max(min_lr_ratio, x * (1 - min_lr_ratio) * 0.5 + (1 + min_lr_ratio) * 0.5)

        return LambdaLR(optimizer, cosine)
    if kind == "constant":
        return LambdaLR(optimizer, lambda step: warmup(step) if step < warmup_steps else 1.0)
    if kind == "linear":
        def linear(step: int) -> float:
            if step < warmup_steps:
                return warmup(step)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        return LambdaLR(optimizer, linear)
    raise ValueError(f"unknown lr_schedule {kind!r}; expected cosine, constant or linear")
