"""The driver's step math: rollouts + rewards → masks → per-process advantages → learner batch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import numpy as np
import torch

from videop2r.config import load_config
from videop2r.data.records import VideoR1Record
from videop2r.learner.batch import MULTI_MODAL_KEYS
from videop2r.rewards import ProcessReward
from videop2r.rollout import Completion
from videop2r.train.batches import PromptInputs
from videop2r.train.group_rewards import ScoredResponse
from videop2r.train.loop import Group, PAGRPOLoop, Prompt, rollout_seed

RECORD = VideoR1Record(problem_id="q1", problem="What colour?", options=["A. red", "B. green"],
                       solution="<answer>B</answer>", path="v.mp4", data_type="video", problem_type="multiple choice")
GOOD = "<observation>I see green.</observation><think>Green is option B.</think><answer>B</answer>"
BAD = "<observation>I see red.</observation><think>Red is option A.</think><answer>A</answer>"


@pytest.fixture(scope="module")
def processor(assets):
    from videop2r.model import load_processor

    return load_processor(assets["model"])


def _loop(processor, estimator: str, *overrides: str) -> PAGRPOLoop:
    config = load_config(overrides=[f"algorithm.adv_estimator={estimator}", *overrides])
    runtime = SimpleNamespace(config=config, processor=processor, blocked_token_ids=[])
    return PAGRPOLoop(runtime, learner=None, feed=None)


def _group(processor, scores: list[tuple[float, float]]) -> Group:
    import numpy as np

    from videop2r.prompting import build_inputs

    clip = SimpleNamespace(frames=np.zeros((4, 56, 56, 3), dtype=np.uint8), sample_fps=2.0)
    sample = SimpleNamespace(record=RECORD, video=clip)
    features = build_inputs(processor, sample)
    inputs = PromptInputs(features["input_ids"][0].tolist(),
                          {k: features[k] for k in MULTI_MODAL_KEYS if k in features}, features)
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    completions, scored = [], []
    for text, (r_p, r_r) in zip([GOOD, BAD], scores):
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"] + [end]
        completions.append(Completion(text, ids, [-0.5] * len(ids), "stop", end, len(inputs.prompt_ids), "3", "u"))
        scored.append(ScoredResponse(text, ProcessReward(1, 0, accuracy=r_p - 1, length_reward=0.0, total=r_p),
                                     ProcessReward(1, 0, accuracy=r_r - 1, length_reward=0.0, total=r_r), None))
    return Group(Prompt("1-0", sample, inputs), completions, scored)


def test_pa_grpo_puts_each_process_advantage_on_its_own_tokens(processor):
    loop = _loop(processor, "pa_grpo")
    batch, stats = loop.training_batch([_group(processor, [(2.0, 2.0), (1.0, 1.0)])])
    adv, mask = batch.batch["advantages"], batch.batch["response_mask"]
    assert adv.shape == mask.shape and batch.batch["old_log_probs"].shape == mask.shape
    good, bad = adv[0][mask[0].bool()], adv[1][mask[1].bool()]
    # two-member group, R_P and R_R both differ by 1: A = ±1/(std≈0.707) on their own tokens
    assert torch.allclose(good[:-1], torch.full_like(good[:-1], 0.7071), atol=1e-3)
    assert torch.allclose(bad[:-1], torch.full_like(bad[:-1], -0.7071), atol=1e-3)
    assert good[-1] == 0 and bad[-1] == 0  # <|im_end|> is outside both processes: no advantage
    assert stats["collapse/perception"] == 0 and stats["reward/perception/total"] == 1.5
    assert batch.non_tensor_batch["weight_version"].tolist() == [3, 3]
    assert torch.equal(batch.batch["rollout_log_probs"][0][mask[0].bool()], torch.full((int(mask[0].sum()),), -0.5))


def test_only_the_process_that_differs_gets_an_advantage(processor):
    loop = _loop(processor, "pa_grpo")
    batch, stats = loop.training_batch([_group(processor, [(2.0, 1.0), (1.0, 1.0)])])  # same R_R
    text_ids = processor.tokenizer(GOOD, add_special_tokens=False)["input_ids"]
    observation_tokens = len(processor.tokenizer("<observation>I see green.</observation>",
                                                 add_special_tokens=False)["input_ids"])
    row = batch.batch["advantages"][0][: len(text_ids)]
    assert (row[:observation_tokens] > 0).all() and (row[observation_tokens:] == 0).all()
    assert stats["collapse/reasoning"] == 1.0 and stats["collapse/perception"] == 0.0


def test_grpo_spreads_one_advantage_over_all_tokens(processor):
    loop = _loop(processor, "grpo")
    batch, _ = loop.training_batch([_group(processor, [(2.0, 1.0), (1.0, 1.0)])])
    mask = batch.batch["response_mask"][0].bool()
    row = batch.batch["advantages"][0][mask]
    assert torch.allclose(row, torch.full_like(row, row[0])) and row[0] > 0


@pytest.mark.parametrize("estimator", ["pa_grpo", "pa_grpo_no_separation", "grpo"])
def test_the_loop_and_the_verl_adapter_give_the_same_advantages(processor, estimator):
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from videop2r.algorithms import registered_name

    loop = _loop(processor, estimator, "algorithm.norm_eps=0.5")
    batch, stats = loop.training_batch([_group(processor, [(2.0, 1.0), (1.0, 3.0)])])
    metrics: dict[str, float] = {}
    via_verl, _ = get_adv_estimator_fn(registered_name(estimator))(
        token_level_rewards=torch.zeros(batch.batch["response_mask"].shape),
        response_mask=batch.batch["response_mask"], index=batch.non_tensor_batch["uid"],
        config=loop.config.algorithm, perception_mask=batch.batch["perception_mask"],
        reasoning_mask=batch.batch["reasoning_mask"], perception_scores=torch.tensor([2.0, 1.0], dtype=torch.float64),
        reasoning_scores=torch.tensor([1.0, 3.0], dtype=torch.float64), metrics=metrics)
    assert torch.equal(batch.batch["advantages"], via_verl.float()) and via_verl.abs().sum() > 0
    process = "total" if estimator == "grpo" else "perception"
    assert stats[f"collapse/{process}"] == metrics[f"advantage/collapse_fraction/{process}"]


def test_the_loop_takes_the_normalisation_of_its_config(processor):
    loop = _loop(processor, "pa_grpo", "algorithm.norm_adv_by_std_in_grpo=false")
    batch, _ = loop.training_batch([_group(processor, [(2.0, 2.0), (1.0, 1.0)])])
    mask = batch.batch["response_mask"][0].bool()
    good = batch.batch["advantages"][0][mask]
    assert torch.allclose(good[:-1], torch.full_like(good[:-1], 0.5))  # R − mean, not divided by the std


def test_rollout_seeds_are_a_pure_function_of_step_and_prompt():
    assert rollout_seed(0, 5, 1) == rollout_seed(0, 5, 1)
    assert len({rollout_seed(0, step, i) for step in range(50) for i in range(8)}) == 400


async def test_rewards_start_as_each_rollout_returns(processor):
    """A fast prompt is scored while a slow prompt is still generating (not after the whole batch)."""
    import asyncio
    import time

    events: list[tuple[str, str, float]] = []

    class SlowFastRollout:
        async def generate(self, payload):
            uid = payload["rid"][0].rsplit("-", 1)[0]  # one rid per sample: "<uid>-<i>"
            await asyncio.sleep(0.5 if uid == "1-0" else 0.05)
            events.append(("rollout_done", uid, time.monotonic()))
            return [Completion(GOOD, [1, 2], [], "stop", None, 3, "0", "u")]

    class RecordingScorer:
        async def score_group(self, record, uid, responses):
            events.append(("score_start", uid, time.monotonic()))
            return [ScoredResponse(r, ProcessReward(0, 0, total=1.0), ProcessReward(0, 0, total=1.0), None)
                    for r in responses]

    loop = _loop(processor, "pa_grpo")
    loop.rt.rollout, loop.rt.scorer = SlowFastRollout(), RecordingScorer()
    features = {"input_ids": torch.tensor([[1, 2, 3]])}
    clip = (np.zeros((2, 28, 28, 3), dtype=np.uint8), 2.0)  # decoded frames + their fps (sent as a data: URI)
    prompts = [Prompt(uid, SimpleNamespace(record=RECORD, video=clip, image=None), PromptInputs([1, 2, 3], {}, features))
               for uid in ("1-0", "1-1")]
    groups = await loop._collect(prompts, step=1)
    assert [g.prompt.uid for g in groups] == ["1-0", "1-1"] and not any(g.error for g in groups)
    at = {(kind, uid): t for kind, uid, t in events}
    assert at[("score_start", "1-1")] < at[("rollout_done", "1-0")]
