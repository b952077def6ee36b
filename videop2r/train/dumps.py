"""Per-rollout and per-item dumps of a training run (`trainer.dump_rollouts`), as JSON lines.

`rollouts.jsonl` holds, per rollout of a PA-GRPO step, the rewards of both processes, the
advantage the estimator put on each process's tokens and the response text, so that a study can
apply every estimator to the *same* logged rewards (collapse without the policy as a confounder).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, default=float) + "\n")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float | None:
    count = float(mask.sum())
    return float((values * mask).sum()) / count if count else None


def rollout_rows(kept: list[Any], advantages: torch.Tensor, perception_mask: torch.Tensor,
                 reasoning_mask: torch.Tensor) -> list[dict[str, Any]]:
    """One row per kept (group, completion, scored): rewards, per-process advantages, text."""
    rows = []
    for index, (group, completion, scored) in enumerate(kept):
        uid = group.prompt.uid
        rows.append({
            "step": int(str(uid).split("-", 1)[0]) if str(uid).split("-", 1)[0].isdigit() else None,
            "uid": uid,
            "id": str(group.prompt.sample.record.problem_id),
            "r_p": float(scored.perception_total),
            "r_r": float(scored.reasoning_total),
            "sufficient": bool(scored.sufficient),
            "accuracy": float(scored.reasoning.accuracy or 0.0),
            "adv_p": _masked_mean(advantages[index], perception_mask[index].float()),
            "adv_r": _masked_mean(advantages[index], reasoning_mask[index].float()),
            "tokens": len(completion.output_ids),
            "text": scored.text[:400],
        })
    return rows


def dump_rollouts(run_dir: Path, kept: list[Any], advantages: torch.Tensor, perception_mask: torch.Tensor,
                  reasoning_mask: torch.Tensor) -> None:
    append_jsonl(Path(run_dir) / "rollouts.jsonl", rollout_rows(kept, advantages, perception_mask, reasoning_mask))
