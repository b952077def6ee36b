"""Per-process rewards of a group: accuracy and judge concurrently, in-process fallback on dead services."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from videop2r.config import load_config
from videop2r.data.records import VideoR1Record
from videop2r.rewards import ProcessReward
from videop2r.rewards.client import RewardClient
from videop2r.rewards.requests import judge_item
from videop2r.train.group_rewards import GroupScorer
from videop2r.local_services import free_port
from videop2r.train.stage import reward_shape

RECORD = VideoR1Record(
    problem_id="synth-1-colour", problem="What colour is the moving shape?",
    options=["A. red", "B. green", "C. blue", "D. yellow"], solution="<answer>B</answer>", path="v.mp4",
    data_type="video", problem_type="multiple choice", evidence=["colour: green"],
)
RIGHT = "<observation>I see a green circle moving right.</observation><think>It is green, option B.</think><answer>B</answer>"
BLIND = "<observation>I see a shape.</observation><think>Maybe option A.</think><answer>A</answer>"
NO_TAGS = "B"


def _config():
    return load_config(overrides=["reward.judge=evidence", "reward.perception_length=[1, 50]",
                                  "reward.reasoning_length=[1, 50]", "reward.request_retries=0"])


async def _score(remote_endpoints: list[str]):
    config = _config()
    fallbacks = []
    remote = RewardClient(remote_endpoints, remote_endpoints, retries=0, backoff_s=0.01, local_config=config,
                          registry=CollectorRegistry())
    local = RewardClient(local_config=config, registry=CollectorRegistry())
    scorer = GroupScorer(remote, local, reward_shape(config), on_fallback=lambda s, e: fallbacks.append(s))
    try:
        return await scorer.score_group(RECORD, "7-0", [RIGHT, BLIND, NO_TAGS]), fallbacks
    finally:
        await remote.aclose()
        await local.aclose()


async def test_in_process_scoring_gives_per_process_components():
    (right, blind, untagged), fallbacks = await _score([])
    assert fallbacks == []
    assert right.perception == ProcessReward(format=1, length=right.perception.length, accuracy=1.0,
                                             length_reward=0.2, total=2.2)
    assert right.reasoning.accuracy == 1.0 and right.reasoning_total == 2.2
    assert right.sufficient and right.well_formed
    assert blind.perception.accuracy == 0.0 and blind.perception_total == 1.0  # format only
    assert blind.reasoning.accuracy == 0.0
    assert untagged.verdict is None and untagged.perception_total == 0.0 and not untagged.well_formed


async def test_dead_reward_endpoints_fall_back_to_in_process_scoring():
    dead = [f"http://127.0.0.1:{free_port()}"]
    (right, blind, _), fallbacks = await _score(dead)
    assert sorted(fallbacks) == ["reward-accuracy", "reward-judge"]
    assert right.perception_total == 2.2 and blind.perception_total == 1.0


def test_judge_item_sends_the_observation_and_the_evidence():
    item = judge_item(RECORD, "1/0", RIGHT)
    assert item["observation"] == "<observation>I see a green circle moving right.</observation>"
    assert item["evidence"] == ["colour: green"] and item["answer"] == "B" and item["options"][1] == "B. green"
    assert judge_item(RECORD, "1/1", "no observation at all") is None
