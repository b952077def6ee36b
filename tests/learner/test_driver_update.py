"""Driver side of the learner step, without Ray: dropped and skipped rows are counted, the old-log-prob
pass is skipped when a batch is one optimizer step, judge errors get no perception advantage,
micro-batches follow the token budget, and seq-mean-process-mean is the method §4 weighting."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from videop2r.algorithms import compute_process_advantages
from videop2r.algorithms.policy_loss import aggregate
from videop2r.config import load_config
from videop2r.learner.batch import RolloutSample, VisionTokens, build_batch
from videop2r.learner.micro import RowTooLong, equalise, micro_cost, plan_micro_batches
from videop2r.learner.settings import LearnerSettings
from videop2r.train.batches import with_training_fields
from videop2r.train.update import BatchSkipped, impute_judge_errors, learner_update

VISION = VisionTokens(image_token_id=90, video_token_id=91, merge_size=2, blocked_ids=(90, 91))


class FakeLearner:
    """Records what the driver asks of the learner (the real one is tested in test_learner_group)."""

    def __init__(self, config) -> None:
        self.vision = VISION
        self.settings = LearnerSettings.from_config(config)
        self.calls: list[str] = []
        self.seen = None

    def compute_log_prob(self, batch):
        self.calls.append("old")
        out = batch.select(batch_keys=["response_mask"])
        out.batch["old_log_probs"] = torch.zeros_like(batch.batch["response_mask"], dtype=torch.float32)
        return out

    def compute_ref_log_prob(self, batch):
        self.calls.append("ref")
        out = batch.select(batch_keys=["response_mask"])
        out.batch["ref_log_prob"] = torch.zeros_like(batch.batch["response_mask"], dtype=torch.float32)
        return out

    def update_policy(self, batch):
        self.calls.append("update")
        self.seen = batch
        return {"actor/step": 1.0}


def _batch(prompt_lengths, response_lengths):
    rows = [RolloutSample(list(range(1, p + 1)), list(range(10, 10 + r)), uid=f"g{i // 2}")
            for i, (p, r) in enumerate(zip(prompt_lengths, response_lengths))]
    return with_training_fields(build_batch(rows, pad_token_id=0))


def test_rows_the_learner_cannot_take_are_dropped_and_counted():
    config = load_config(overrides=["learner.max_prompt_tokens=6", "learner.max_tokens_per_micro_batch=12",
                                    "trainer.mini_batch_size=4", "algorithm.kl_coef=0"])
    learner, skips = FakeLearner(config), Counter()
    batch = _batch([4, 8, 5, 3], [3, 2, 9, 4])  # row 1: prompt 8 > 6; row 2: 5 + 9 > 12 tokens
    metrics, times = learner_update(learner, batch, config, lambda reason, n=1: skips.update({reason: n}))
    assert skips == {"prompt_over_max_prompt_tokens": 1, "row_over_token_budget": 1}
    assert len(learner.seen) == 2 and metrics["learner/dropped_rows"] == 2
    # one optimizer step per batch: no old-log-prob pass, and the placeholder is not sent as π_old
    assert learner.calls == ["update"] and "old_log_probs" not in learner.seen.batch.keys()
    assert metrics["learner/old_log_prob_pass"] == 0.0 and "time/old_log_prob" not in times


def test_the_old_log_prob_pass_runs_when_the_batch_is_several_steps():
    config = load_config(overrides=["trainer.mini_batch_size=2", "trainer.prompts_per_step=2", "rollout.n=2",
                                    "algorithm.kl_coef=0.04"])
    learner = FakeLearner(config)
    learner_update(learner, _batch([4, 4, 4, 4], [3, 3, 3, 3]), config, lambda reason, n=1: None)
    assert learner.calls == ["old", "ref", "update"]
    always = load_config(overrides=["learner.old_log_prob_pass=always", "trainer.mini_batch_size=4"])
    learner = FakeLearner(always)
    learner_update(learner, _batch([4, 4, 4, 4], [3, 3, 3, 3]), always, lambda reason, n=1: None)
    assert learner.calls[0] == "old"


def test_a_batch_with_nothing_to_train_on_is_skipped_and_counted():
    config = load_config(overrides=["learner.max_prompt_tokens=2"])
    skips = Counter()
    with pytest.raises(BatchSkipped, match="none of the 2 rollouts"):
        learner_update(FakeLearner(config), _batch([4, 5], [3, 3]), config,
                       lambda reason, n=1: skips.update({reason: n}))
    assert skips == {"prompt_over_max_prompt_tokens": 2, "learner_batch_skipped": 1}


def test_judge_errors_get_no_perception_advantage_and_leave_the_group_mean_alone():
    uids = ["a"] * 4 + ["b"] * 4
    scores = [2.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # judge outage on a/1 and on all of b but b/0
    failed = [False, True, False, False, False, True, True, True]
    imputed = impute_judge_errors(scores, uids, failed)
    assert imputed[1] == pytest.approx(1.0) and imputed[5:] == [1.0, 1.0, 1.0]
    mask = torch.ones(8, 4)
    perception = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 8)
    result = compute_process_advantages("pa_grpo", torch.tensor(imputed), torch.arange(8.0), mask, uids,
                                        perception_mask=perception, reasoning_mask=mask - perception)
    a_p = result.perception_advantage
    assert a_p[1] == 0.0 and (a_p[4:] == 0.0).all()  # b: one judged rollout is no signal
    assert a_p[0] > 0 > a_p[3] and float(a_p[:4].sum()) == pytest.approx(0.0, abs=1e-6)
    assert (result.advantages[1, :2] == 0).all() and (result.advantages[1, 2:] != 0).all()  # A_R stays
    assert sum(failed) == 4  # what the step logs as rollout/judge_errors


def test_token_budget_micro_batches():
    shapes = [(10, 2), (3, 1), (10, 6), (4, 4), (2, 2)]
    plan = plan_micro_batches(shapes, max_rows=8, max_tokens=32)
    assert sorted(i for micro in plan for i in micro) == [0, 1, 2, 3, 4]
    assert all(micro_cost([shapes[i] for i in micro]) <= 32 for micro in plan)
    assert plan[0][0] == 2  # longest first
    assert plan_micro_batches(shapes, max_rows=2) == [[0, 1], [2, 3], [4]]  # no budget: rows in order
    assert max(len(m) for m in plan_micro_batches(shapes, max_rows=1, max_tokens=1000)) == 1
    with pytest.raises(RowTooLong, match="row 2 has 10 prompt \\+ 6 response tokens"):
        plan_micro_batches(shapes, max_rows=8, max_tokens=15)
    assert equalise(plan, torch.device("cpu")) == plan  # one process: nothing to match


def test_seq_mean_process_mean_weighs_each_process_of_each_rollout_equally():
    loss = torch.tensor([[1.0, 1.0, 1.0, 1.0, 4.0, 0.0], [2.0, 6.0, 6.0, 6.0, 6.0, 6.0]])
    mask = torch.ones(2, 6)
    perception = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0, 0], [1.0, 0, 0, 0, 0, 0]])
    reasoning = torch.tensor([[0, 0, 0, 0, 1.0, 1.0], [0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    # rollout 0: P mean 1 + R mean 2 = 3; rollout 1: P mean 2 + R mean 6 = 8 → (3 + 8) / 2
    assert float(aggregate(loss, mask, "seq-mean-process-mean", perception, reasoning)) == pytest.approx(5.5)
    assert float(aggregate(loss, mask, "token-mean")) == pytest.approx(loss.mean())
    # without process masks (SFT): the per-rollout token mean
    assert float(aggregate(loss, mask, "seq-mean-process-mean")) == pytest.approx((8 / 6 + 32 / 6) / 2)
