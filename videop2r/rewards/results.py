"""Typed reward results (in the spirit of EasyR1's ``RewardScore``): one process's named
components and the two processes of one response.

The JSON lines of `videop2r rewards score` and the reward-accuracy service are their
`to_json()` (same keys, same order, unknown components left out); the trainer and the CoT
pipeline read the attributes instead of ``dict.get`` with a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict


class ProcessRewardLine(TypedDict):
    """One process's components on the wire; the last three once accuracy is known."""

    accuracy: NotRequired[float]
    format: int
    length: int
    length_reward: NotRequired[float]
    total: NotRequired[float]


class ScoreLine(TypedDict):
    """A `videop2r rewards score` output line (one result of ``POST /v1/score``)."""

    id: str | int
    perception: ProcessRewardLine
    reasoning: ProcessRewardLine


_OPTIONAL = ("accuracy", "length_reward", "total")


@dataclass(frozen=True, slots=True)
class ProcessReward:
    """R_form and the token length of one process and, once its accuracy is known (the judge's
    verdict for perception, Acc_t for reasoning), R_acc, R_len and R_k after the ablations."""

    format: int
    length: int
    accuracy: float | None = None
    length_reward: float | None = None
    total: float | None = None

    def to_json(self) -> ProcessRewardLine:
        fields = (("accuracy", self.accuracy), ("format", self.format), ("length", self.length),
                  ("length_reward", self.length_reward), ("total", self.total))
        return {name: value for name, value in fields if value is not None}  # type: ignore[return-value]

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> ProcessReward:
        """From a wire line (KeyError without ``format`` or ``length``)."""
        optional = {name: float(line[name]) for name in _OPTIONAL if line.get(name) is not None}
        return cls(format=int(line["format"]), length=int(line["length"]), **optional)


@dataclass(frozen=True, slots=True)
class RewardParts:
    """The per-process rewards of one response."""

    id: str | int
    perception: ProcessReward
    reasoning: ProcessReward

    def to_json(self) -> ScoreLine:
        return {"id": self.id, "perception": self.perception.to_json(), "reasoning": self.reasoning.to_json()}

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> RewardParts:
        """From a `ScoreLine` (KeyError for an error line: ``{"id", "error"}``)."""
        return cls(line["id"], ProcessReward.from_json(line["perception"]),
                   ProcessReward.from_json(line["reasoning"]))
