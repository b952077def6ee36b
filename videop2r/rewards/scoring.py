"""The one scoring entry point: a response in, per-process named reward components out.

`reward_parts` gives them typed (`videop2r.rewards.results`), `score_response` as the JSON line
that `videop2r rewards score`, the reward-accuracy service and the in-process fallback of the
trainer's client answer (EasyR1-style named components, one dict per process)::

    {"id": ..., "perception": {"format": 0|1, "length": <tokens>[, "accuracy", "length_reward", "total"]},
                "reasoning":  {"accuracy": <Acc_t>, "format": 0|1, "length": <tokens>,
                               "length_reward": <0 or bonus>, "total": <R_R>}}

Perception accuracy is the judge's verdict (method §5), which this module does not compute: pass
it in the request (`perception_verdict`) or add it later (`perception_judged` on the typed parts,
`with_perception_verdict` on a line); until then perception has no accuracy, length_reward or total.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from videop2r.rewards.accuracy import UnknownProblemType, answer_accuracy, ground_truth_answer, parse_problem_type
from videop2r.rewards.process_rewards import RewardShape, process_components
from videop2r.rewards.results import RewardParts, ScoreLine
from videop2r.rewards.segments import segment_response, token_masks
from videop2r.rewards.token_offsets import SegmentTokenizer, WhitespaceTokenizer, load_tokenizer

log = logging.getLogger(__name__)
_warned_problem_types: set[str] = set()


class ScoreRequest(BaseModel):
    """One response to score. Extra fields (Video-R1 records carry many) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StrictStr | StrictInt = Field(validation_alias=AliasChoices("id", "problem_id"))
    problem_type: StrictStr
    response: StrictStr
    solution: StrictStr | None = None
    answer: StrictStr | None = None
    options: list[StrictStr] | None = None
    # -- the perception judge's verdict, when already known (method §5: True iff "Yes")
    perception_verdict: StrictBool | None = None

    @model_validator(mode="after")
    def _has_ground_truth(self) -> "ScoreRequest":
        if self.solution is None and self.answer is None:
            raise ValueError("needs a 'solution' or an 'answer' field")
        return self

    @property
    def ground_truth(self) -> str:
        """The answer to compare with: from `solution` (Video-R1 layout) if present, else `answer`."""
        return ground_truth_answer(self.solution if self.solution is not None else self.answer or "")


@dataclass(frozen=True)
class ScoringSettings:
    """What scoring needs besides the request: reward shape (ranges, bonus, ablations) and tokenizer."""

    shape: RewardShape = field(default_factory=RewardShape)
    tokenizer: SegmentTokenizer = field(default_factory=WhitespaceTokenizer)
    # -- compute budget of the quadratic scorers (truth x response words); None = unbounded
    max_cells: int | None = None

    @classmethod
    def from_config(cls, config: Any, tokenizer: str | SegmentTokenizer | None = None) -> "ScoringSettings":
        """From a `VideoP2RConfig` (reward and algorithm sections); `tokenizer` overrides reward.tokenizer."""
        reward, algorithm = config.reward, config.algorithm
        shape = RewardShape(
            perception_length=tuple(reward.perception_length),
            reasoning_length=tuple(reward.reasoning_length),
            length_bonus=reward.length_bonus,
            use_perception_reward=algorithm.use_perception_reward,
            use_reasoning_reward=algorithm.use_reasoning_reward,
            use_length_reward=algorithm.use_length_reward,
        )
        return cls(shape=shape, tokenizer=load_tokenizer(tokenizer if tokenizer is not None else reward.tokenizer),
                   max_cells=reward.score_budget_cells)


def _reasoning_accuracy(request: ScoreRequest, answer: str | None, strict: bool, max_cells: int | None) -> float:
    try:
        return answer_accuracy(request.problem_type, answer, request.ground_truth, request.options, max_cells)
    except UnknownProblemType:
        if strict:
            raise
        if request.problem_type not in _warned_problem_types:  # once per type, not once per rollout
            _warned_problem_types.add(request.problem_type)
            log.warning("unknown problem_type %r (id %r): reasoning accuracy 0", request.problem_type, request.id)
        return 0.0


def reward_parts(
    item: ScoreRequest | Mapping[str, Any], settings: ScoringSettings | None = None, *, strict: bool = False
) -> RewardParts:
    """Per-process reward components of one response.

    A mapping is validated as a `ScoreRequest` (pydantic ValidationError if it is not one).
    An unknown problem_type raises `UnknownProblemType` when `strict`, else scores accuracy 0
    (training goes on; logged once per type). Any response string is scored, never raises.
    """
    request = item if isinstance(item, ScoreRequest) else ScoreRequest.model_validate(item)
    settings = settings or ScoringSettings()
    if strict:
        parse_problem_type(request.problem_type)
    segments = segment_response(request.response)
    masks = token_masks(request.response, settings.tokenizer, segments)
    perception_accuracy = None if request.perception_verdict is None else float(request.perception_verdict)
    return RewardParts(
        id=request.id,
        perception=process_components(
            "perception",
            perception_accuracy,
            int(segments.perception_well_formed),
            masks.perception_length,
            settings.shape,
        ),
        reasoning=process_components(
            "reasoning",
            _reasoning_accuracy(request, segments.answer, strict, settings.max_cells),
            int(segments.reasoning_well_formed),
            masks.reasoning_length,
            settings.shape,
        ),
    )


def score_response(
    item: ScoreRequest | Mapping[str, Any], settings: ScoringSettings | None = None, *, strict: bool = False
) -> ScoreLine:
    """`reward_parts` as its JSON line (shape in the module doc)."""
    return reward_parts(item, settings, strict=strict).to_json()


def perception_judged(parts: RewardParts, verdict: bool, shape: RewardShape) -> RewardParts:
    """`parts` with the judge's verdict as perception accuracy (its length reward and total follow)."""
    perception = process_components(
        "perception", float(bool(verdict)), parts.perception.format, parts.perception.length, shape
    )
    return replace(parts, perception=perception)


def with_perception_verdict(scored: Mapping[str, Any], verdict: bool, shape: RewardShape) -> dict[str, Any]:
    """A copy of a `score_response` line with the judge's verdict filled into perception."""
    perception = scored["perception"]
    return {
        **scored,
        "perception": process_components(
            "perception", float(bool(verdict)), int(perception["format"]), int(perception["length"]), shape
        ).to_json(),
        "reasoning": dict(scored["reasoning"]),
    }
