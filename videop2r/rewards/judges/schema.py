"""What goes into and comes out of a perception judge (the reward-judge service's wire format)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class JudgeItem(BaseModel):
    """One observation to judge against its record (method §5 inputs, plus what the local judges need)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    # -- strict: a boolean is neither (JSON false is not the id 0)
    id: StrictStr | StrictInt
    question: str
    # -- multiple-choice options as the record carries them ("A. red", ...); appended to the question
    options: list[str] | None = None
    # -- the correct answer (the text inside the solution's <answer> block, or the record's `answer`)
    answer: str
    # -- the text of the rollout's <observation> segment (tags optional)
    observation: str
    data_type: Literal["video", "image"] = "video"
    # -- ground-truth facts ("colour: red", "count: 3"), for the evidence judge
    evidence: list[str] | None = None
    # -- a reference observation for the record (the CoT set's `observation`), for the embedding judge
    reference_observation: str | None = None


class JudgeResult(BaseModel):
    """The verdict on one item. `error` marks a No that came from a failure, not from the judge."""

    id: StrictStr | StrictInt
    sufficient: bool
    refused: bool = False
    reason: str = ""
    error: bool = False


class JudgeBatch(BaseModel):
    """Body of `POST /v1/judge`."""

    model_config = ConfigDict(extra="forbid")

    items: list[JudgeItem] = Field(max_length=100_000)


class JudgeBatchResult(BaseModel):
    results: list[JudgeResult]
