"""Per-process reward components and their sum (method §4), with the ablation switches of method §6.

For each process k ∈ {perception, reasoning}:

    R_len,k = bonus  if R_acc,k > 0 and R_form,k > 0 and low_k ≤ tokens_k ≤ high_k, else 0
    R_k     = R_acc,k + R_form,k + R_len,k

Ablations (**ours**, reading method §6): "without perception/reasoning reward" drops that
process's accuracy term (the judge's verdict, or Acc_t) from R_k; since R_len,k requires
R_acc,k > 0, its length bonus goes with it. "Without length reward" drops R_len for both.
The raw accuracy is still reported, so it can be logged while it is not trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from videop2r.rewards.results import ProcessReward

PROCESSES = ("perception", "reasoning")


@dataclass(frozen=True, slots=True)
class RewardShape:
    """Length ranges, bonus and ablation switches; the numbers of method §4 by default."""

    perception_length: tuple[int, int] = (128, 320)
    reasoning_length: tuple[int, int] = (320, 512)
    length_bonus: float = 0.2
    use_perception_reward: bool = True
    use_reasoning_reward: bool = True
    use_length_reward: bool = True

    def length_range(self, process: str) -> tuple[int, int]:
        return self.perception_length if process == "perception" else self.reasoning_length

    def uses_accuracy(self, process: str) -> bool:
        return self.use_perception_reward if process == "perception" else self.use_reasoning_reward


def length_reward(accuracy: float, form: float, tokens: int, token_range: tuple[int, int], bonus: float) -> float:
    """R_len: `bonus` when the process is accurate, well-formed and its length in range (inclusive)."""
    low, high = token_range
    return float(bonus) if accuracy > 0 and form > 0 and low <= tokens <= high else 0.0


def process_components(
    process: str, accuracy: float | None, form: int, tokens: int, shape: RewardShape
) -> ProcessReward:
    """Named components of one process: format, length (tokens), and — when accuracy is known —
    accuracy, length_reward and total (R_k after the ablation switches)."""
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
    if accuracy is None:
        return ProcessReward(format=int(form), length=int(tokens))
    trained_accuracy = float(accuracy) if shape.uses_accuracy(process) else 0.0
    bonus = (
        length_reward(trained_accuracy, form, tokens, shape.length_range(process), shape.length_bonus)
        if shape.use_length_reward
        else 0.0
    )
    return ProcessReward(format=int(form), length=int(tokens), accuracy=float(accuracy), length_reward=bonus,
                         total=trained_accuracy + int(form) + bonus)


def combine_process_rewards(
    perception: Mapping[str, float | int], reasoning: Mapping[str, float | int], shape: RewardShape
) -> tuple[float, float]:
    """(R_P, R_R) from each process's accuracy, format and length (tokens); totals are recomputed.

    Raises ValueError when a component is missing (e.g. perception accuracy before the judge ran).
    """
    totals = []
    for process, components in zip(PROCESSES, (perception, reasoning)):
        missing = [key for key in ("accuracy", "format", "length") if components.get(key) is None]
        if missing:
            raise ValueError(f"{process}: missing reward component(s) {', '.join(missing)}")
        recomputed = process_components(
            process, float(components["accuracy"]), int(components["format"]), int(components["length"]), shape
        )
        totals.append(float(recomputed.total))
    return totals[0], totals[1]
