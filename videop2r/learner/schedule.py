"""Learning-rate schedules with linear warmup (one scheduler step per training step)."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from verl.utils.torch_functional import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup


def build_lr_schedule(optimizer: Optimizer, kind: str, warmup_steps: int, total_steps: int,
                      min_lr_ratio: float = 0.0) -> LambdaLR:
    """cosine (to `min_lr_ratio`·lr at `total_steps`), constant, or linear (to 0), after `warmup_steps`."""
    if kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps,
                                               min_lr_ratio=min_lr_ratio)
    if kind == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup_steps)
    if kind == "linear":
        def linear(step: int) -> float:
            if step < warmup_steps:
                return step / max(1, warmup_steps)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        return LambdaLR(optimizer, linear)
    raise ValueError(f"unknown lr_schedule {kind!r}; expected cosine, constant or linear")
