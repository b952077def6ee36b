"""Rewards of VideoP2R (method §2, §4): segments, Acc_t per problem type, per-process components
(typed in `results`: `ProcessReward`, `RewardParts`; their JSON lines are the services' wire format).

Pure functions, no torch: the reward-accuracy service imports this package and nothing heavier.
Judge-based perception accuracy lives in the judge modules; this package takes its verdict.
"""

from videop2r.rewards.accuracy import (
    MRA_THRESHOLDS,
    ProblemType,
    UnknownProblemType,
    answer_accuracy,
    free_form_accuracy,
    ground_truth_answer,
    mean_relative_accuracy,
    multiple_choice_accuracy,
    numerical_accuracy,
    ocr_accuracy,
    parse_problem_type,
    regression_accuracy,
)
from videop2r.rewards.process_rewards import (
    PROCESSES,
    RewardShape,
    combine_process_rewards,
    length_reward,
    process_components,
)
from videop2r.rewards.results import ProcessReward, ProcessRewardLine, RewardParts, ScoreLine
from videop2r.rewards.scoring import (
    ScoreRequest,
    ScoringSettings,
    perception_judged,
    reward_parts,
    score_response,
    with_perception_verdict,
)
from videop2r.rewards.segments import (
    Segments,
    Span,
    TokenMasks,
    extract_answer,
    perception_well_formed,
    reasoning_well_formed,
    segment_response,
    token_masks,
    token_masks_for_ids,
)
from videop2r.rewards.text_metrics import rouge_f_measures, word_error_rate
from videop2r.rewards.token_offsets import HFTokenizer, SegmentTokenizer, WhitespaceTokenizer, load_tokenizer

__all__ = [
    "MRA_THRESHOLDS",
    "PROCESSES",
    "HFTokenizer",
    "ProblemType",
    "ProcessReward",
    "ProcessRewardLine",
    "RewardParts",
    "RewardShape",
    "ScoreLine",
    "ScoreRequest",
    "ScoringSettings",
    "SegmentTokenizer",
    "Segments",
    "Span",
    "TokenMasks",
    "UnknownProblemType",
    "WhitespaceTokenizer",
    "answer_accuracy",
    "combine_process_rewards",
    "extract_answer",
    "free_form_accuracy",
    "ground_truth_answer",
    "length_reward",
    "load_tokenizer",
    "mean_relative_accuracy",
    "multiple_choice_accuracy",
    "numerical_accuracy",
    "ocr_accuracy",
    "parse_problem_type",
    "perception_judged",
    "perception_well_formed",
    "process_components",
    "reasoning_well_formed",
    "regression_accuracy",
    "reward_parts",
    "rouge_f_measures",
    "score_response",
    "segment_response",
    "token_masks",
    "token_masks_for_ids",
    "with_perception_verdict",
    "word_error_rate",
]
