"""RewardClient against real service processes: whole batches, spread over endpoints, failover."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from videop2r.local_services import LocalService, free_port
from videop2r.rewards import ScoreRequest, score_response
from videop2r.rewards.client import RewardClient, RewardRequestError, RewardServiceError
from videop2r.rewards.judges import JudgeResult

pytestmark = pytest.mark.integration

FACTS = ["colour: red", "direction: left"]


def _judge_items(count: int) -> list[dict]:
    """A batch of groups: even items state both facts, odd ones only the colour."""
    return [{"id": i, "question": "What colour is the ball and where does it go?", "answer": "red, left",
             "observation": f"Ball {i // 8}: a red ball rolls {'to the left' if i % 2 == 0 else 'away'}.",
             "evidence": FACTS} for i in range(count)]


def _dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def test_judge_spreads_a_batch_over_replicas_and_skips_a_dead_one(
    evidence_judge_services: list[LocalService],
) -> None:
    first, second = evidence_judge_services
    before = [s.metric('videop2r_reward_items_total{service="reward-judge"}') for s in (first, second)]
    registry = CollectorRegistry()
    dead = _dead()
    async with RewardClient(judge_endpoints=[first.url, dead, second.url], retries=3, backoff_s=0.01,
                            registry=registry) as client:
        results = await client.judge(_judge_items(64))
    assert all(isinstance(r, JudgeResult) for r in results)
    assert [r.id for r in results] == list(range(64))
    assert [r.sufficient for r in results] == [i % 2 == 0 for i in range(64)]
    after = [s.metric('videop2r_reward_items_total{service="reward-judge"}') for s in (first, second)]
    served = [a - b for a, b in zip(after, before)]
    assert sum(served) == 64 and min(served) > 0, served  # both live replicas took part
    failures = registry.get_sample_value("videop2r_endpoint_failures_total",
                                         {"service": "reward-judge", "endpoint": dead})
    assert failures == 1  # tried once, then in cooldown


async def test_all_endpoints_dead_raises_a_clear_error() -> None:
    async with RewardClient(judge_endpoints=[_dead(), _dead()], retries=2, backoff_s=0.01,
                            registry=CollectorRegistry()) as client:
        with pytest.raises(RewardServiceError, match="failed after 3 attempts"):
            await client.judge(_judge_items(4))


async def test_rejected_items_raise_without_retrying(evidence_judge_services: list[LocalService]) -> None:
    bad = _judge_items(2)
    del bad[1]["observation"]
    async with RewardClient(judge_endpoints=[s.url for s in evidence_judge_services], retries=3,
                            registry=CollectorRegistry()) as client:
        with pytest.raises(RewardRequestError, match="items.1.observation: Field required"):
            await client.judge(bad)


async def test_token_is_sent_when_configured(openai_judge_service: LocalService, service_token: str) -> None:
    item = {"id": 1, "question": "What colour?", "answer": "red", "observation": "The ball is red."}
    endpoints = [openai_judge_service.url]
    async with RewardClient(judge_endpoints=endpoints, registry=CollectorRegistry()) as anonymous:
        with pytest.raises(RewardRequestError, match="HTTP 401"):
            await anonymous.judge([item])
    async with RewardClient(judge_endpoints=[openai_judge_service.url], token=service_token,
                            registry=CollectorRegistry()) as client:
        [result] = await client.judge([item])
    assert result.sufficient


async def test_score_matches_the_library(accuracy_service: LocalService) -> None:
    items = [
        ScoreRequest(id=i, problem_type="numerical", answer=str(i % 3),
                     response=f"<observation>dots</observation><think>count</think><answer>{i % 2}</answer>")
        for i in range(40)
    ]
    # the same service under two names (one endpoint per distinct URL): two chunks in flight at once
    async with RewardClient(accuracy_endpoints=[accuracy_service.url, accuracy_service.url.replace("127.0.0.1", "localhost")],
                            registry=CollectorRegistry()) as client:
        lines = await client.score(items)
    assert lines == [score_response(item) for item in items]
