"""Micro-batches by token budget, with the same number of micro-steps on every worker.

A micro-batch's cost is what its forward holds: rows × (longest prompt + longest response),
since padding columns are cut per micro-batch. Rows are packed longest first so rows of similar
length share a micro-batch (little padding). Every worker must run the same number of forwards
(FSDP2 all-gathers each unit once per forward): `equalise` pads a worker's plan with empty steps
up to the largest count, and the caller runs those as weightless forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from videop2r.learner.rows import Rows


class RowTooLong(ValueError):
    """A row alone exceeds the micro-batch token budget (the driver drops such rows before)."""


def row_shapes(rows: Rows) -> list[tuple[int, int]]:
    """(prompt tokens, response tokens) per row, padding excluded."""
    response = rows.tensors["response_mask"]
    attention = rows.tensors["attention_mask"]
    prompt = attention[:, : attention.shape[1] - response.shape[1]].sum(-1)
    return list(zip(prompt.tolist(), response.sum(-1).tolist(), strict=True))


def micro_cost(shapes: Sequence[tuple[int, int]]) -> int:
    """Tokens a micro-batch of these rows forwards (padding to its longest prompt and response)."""
    if not shapes:
        return 0
    return len(shapes) * (max(p for p, _ in shapes) + max(max(r for _, r in shapes), 1))


def plan_micro_batches(shapes: Sequence[tuple[int, int]], max_rows: int, max_tokens: int = 0) -> list[list[int]]:
    """Row indices of each micro-batch: at most `max_rows` rows and (if > 0) `max_tokens` tokens each.

    Without a token budget: consecutive chunks of `max_rows` rows, in order. With one: rows sorted
    by length (longest first), greedily packed. Raises `RowTooLong` for a row above the budget.
    """
    if max_tokens <= 0:
        return [list(range(start, min(start + max_rows, len(shapes)))) for start in range(0, len(shapes), max_rows)]
    order = sorted(range(len(shapes)), key=lambda i: (-(shapes[i][0] + shapes[i][1]), i))
    plan: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if micro_cost([shapes[index]]) > max_tokens:
            raise RowTooLong(f"row {index} has {shapes[index][0]} prompt + {shapes[index][1]} response tokens, "
                             f"more than learner.max_tokens_per_micro_batch ({max_tokens})")
        candidate = current + [index]
        if current and (len(candidate) > max_rows or micro_cost([shapes[i] for i in candidate]) > max_tokens):
            plan.append(current)
            candidate = [index]
        current = candidate
    if current:
        plan.append(current)
    return plan


def equalise(plan: list[list[int]], device: torch.device) -> list[list[int] | None]:
    """`plan` padded with None (weightless steps) to the largest micro-step count over the workers."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(plan)
    count = torch.tensor([len(plan)], dtype=torch.int64, device=device)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return list(plan) + [None] * (int(count) - len(plan))


def filler_row(shapes: Sequence[tuple[int, int]]) -> int:
    """The cheapest row, forwarded by a weightless step."""
    return min(range(len(shapes)), key=lambda i: shapes[i][0] + shapes[i][1])
