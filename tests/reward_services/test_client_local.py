"""RewardClient without endpoints (the embedded default) and its chunking — no processes started."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from videop2r.config import load_config
from videop2r.rewards import ScoringSettings, score_response
from videop2r.rewards.client import RewardClient, RewardServiceError


async def test_in_process_score_and_judge_with_the_config() -> None:
    config = load_config(overrides=["reward.judge=evidence", "reward.length_bonus=0.5"])
    items = [{"id": i, "problem_type": "numerical", "answer": "3",
              "response": f"<observation>three dots</observation><think>count</think><answer>{i}</answer>"}
             for i in range(4)]
    async with RewardClient.from_config(config, registry=CollectorRegistry()) as client:
        lines = await client.score(items)
        verdicts = await client.judge([
            {"id": "a", "question": "How many dots?", "answer": "3", "observation": "three dots",
             "evidence": ["count: 3"]},
            {"id": "b", "question": "How many dots?", "answer": "3", "observation": "so the answer is 3",
             "evidence": ["count: 3"]},
        ])
    assert lines == [score_response(item, ScoringSettings.from_config(config)) for item in items]
    assert [line["reasoning"]["accuracy"] for line in lines] == [0.0, 0.0, 0.0, 1.0]
    assert [(v.id, v.sufficient, v.refused) for v in verdicts] == [("a", True, False), ("b", False, True)]


async def test_empty_batches_make_no_calls() -> None:
    async with RewardClient(registry=CollectorRegistry()) as client:
        assert await client.score([]) == [] and await client.judge([]) == []


async def test_no_endpoints_and_no_config_is_an_error() -> None:
    async with RewardClient(registry=CollectorRegistry()) as client:
        with pytest.raises(RewardServiceError, match="no reward-judge endpoints"):
            await client.judge([{"id": 1, "question": "q", "answer": "a", "observation": "o"}])


@pytest.mark.parametrize(
    ("items", "endpoints", "min_chunk", "sizes"),
    [
        (56, 2, 8, [28, 28]),
        (56, 8, 8, [8] * 7),
        (5, 4, 8, [5]),
        (64, 3, 8, [22, 22, 20]),
        (3, 3, 1, [1, 1, 1]),
    ],
)
def test_chunks_are_contiguous_one_per_endpoint_at_least_min_chunk(
    items: int, endpoints: int, min_chunk: int, sizes: list[int]
) -> None:
    client = RewardClient(min_chunk=min_chunk, registry=CollectorRegistry())
    chunks = client._chunks(list(range(items)), [f"http://e{i}" for i in range(endpoints)])
    assert [len(chunk) for chunk in chunks] == sizes
    assert [x for chunk in chunks for x in chunk] == list(range(items))
