"""`trainer.dump_rollouts` rows: the typed rewards of a rollout and the advantage on each process."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from videop2r.rewards import ProcessReward
from videop2r.rewards.judges.schema import JudgeResult
from videop2r.train.dumps import rollout_rows
from videop2r.train.group_rewards import ScoredResponse


def test_a_rollout_row_carries_both_process_rewards_and_advantages() -> None:
    scored = ScoredResponse("<observation>x</observation>",
                            ProcessReward(1, 2, accuracy=1.0, length_reward=0.2, total=2.2),
                            ProcessReward(1, 3, accuracy=0.5, length_reward=0.0, total=1.5),
                            JudgeResult(id="3-0/0", sufficient=True))
    group = SimpleNamespace(prompt=SimpleNamespace(uid="3-0", sample=SimpleNamespace(
        record=SimpleNamespace(problem_id="q7"))))
    completion = SimpleNamespace(output_ids=[5, 6, 7, 8])
    advantages = torch.tensor([[1.0, 1.0, -2.0, -2.0]])
    perception, reasoning = torch.tensor([[1, 1, 0, 0]]), torch.tensor([[0, 0, 1, 1]])
    (row,) = rollout_rows([(group, completion, scored)], advantages, perception, reasoning)
    assert row == {"step": 3, "uid": "3-0", "id": "q7", "r_p": 2.2, "r_r": 1.5, "sufficient": True,
                   "accuracy": 0.5, "adv_p": 1.0, "adv_r": -2.0, "tokens": 4, "text": scored.text}
    unjudged = ScoredResponse("", ProcessReward(0, 0), ProcessReward(0, 0, accuracy=0.0, length_reward=0.0,
                                                                    total=0.0), None)
    (row,) = rollout_rows([(group, completion, unjudged)], advantages, perception, reasoning)
    assert (row["r_p"], row["accuracy"], row["sufficient"]) == (0.0, 0.0, False)
