"""The three steps on single records: verification rules, judge requests, the output layout, shards."""

from __future__ import annotations

import asyncio

import pytest

from videop2r.config import DataConfig, VideoP2RConfig
from videop2r.cot import Shard, cot_record, generate, judge, shard_of, verify
from videop2r.data.records import parse_record
from videop2r.eval import BenchmarkSource, Policy
from videop2r.eval.clips import MediaLoader
from videop2r.rewards.client import RewardClient
from videop2r.train.batches import reference_output

MC = parse_record(
    {
        "problem_id": "q1",
        "problem": "What colour is the moving shape?",
        "options": ["A. red", "B. green", "C. blue", "D. yellow"],
        "solution": "<answer>D</answer>",
        "path": "videos/eval/00000.mp4",
        "data_type": "video",
        "problem_type": "multiple choice",
        "evidence": ["colour: yellow"],
    }
)
FREE = parse_record(
    {
        "problem_id": "q2",
        "problem": "Describe the motion.",
        "solution": "<answer>a yellow circle moving down</answer>",
        "path": "videos/eval/00000.mp4",
        "data_type": "video",
        "problem_type": "free-form",
    }
)


def output(observation: str, think: str, answer: str) -> str:
    return f"<observation>{observation}</observation>\n<think>{think}</think>\n<answer>{answer}</answer>"


def test_verify_template_then_accuracy_threshold():
    good = verify(MC, output("I see a yellow circle.", "It is yellow, option D.", "D"), 0.6)
    assert (good.kept, good.reason, good.accuracy) == (True, "ok", 1.0)
    wrong = verify(MC, output("I see a red circle.", "It is red, option A.", "A"), 0.6)
    assert (wrong.kept, wrong.reason) == (False, "low_accuracy")
    broken = verify(MC, "<think>It is yellow.</think><answer>D</answer>", 0.6)  # no observation first
    assert (broken.kept, broken.reason, broken.perception_format, broken.reasoning_format) == (
        False,
        "template",
        0,
        1,
    )
    trailing = verify(MC, output("I see a yellow circle.", "so", "D") + " Hope this helps!", 0.6)
    assert trailing.reason == "template"
    # free-form: mean ROUGE; "a yellow circle moving up" vs the truth scores between 0.6 and 1
    partial = verify(FREE, output("I see it.", "It moves.", "a yellow circle moving up"), 0.6)
    assert partial.kept and 0.6 <= partial.accuracy < 1.0
    assert not verify(FREE, output("I see it.", "It moves.", "a yellow circle moving up"), 0.95).kept


def test_cot_record_is_videop2r_layout_ready_for_sft():
    text = output(
        "Based on the question, I need to notice the colour: it is yellow.", "Yellow is option D.", "D"
    )
    row = cot_record(MC, "  " + text + "\n", "qwen2.5-vl-72b")
    assert (
        row["observation"]
        == "<observation>Based on the question, I need to notice the colour: it is yellow.</observation>"
    )
    assert row["process"] == "<think>Yellow is option D.</think>"
    assert (
        row["output"] == text
        and row["solution"] == "<answer>D</answer>"
        and row["cot_teacher"] == "qwen2.5-vl-72b"
    )
    record = parse_record(row)  # the data reader accepts it as it is
    assert reference_output(record) == text  # and SFT trains on the whole process-aware output


def test_shards_split_by_id_only():
    ids = [f"id-{n}" for n in range(200)]
    parts = [[i for i in ids if Shard(k, 4).holds(i)] for k in range(4)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(parts)
    assert shard_of("id-7", 4) == shard_of("id-7", 4)
    assert Shard(1, 4).suffix == ".shard-00001-of-00004" and Shard().suffix == ""
    with pytest.raises(Exception, match="need 0 <= index < count"):
        Shard(4, 4)


class Teacher(Policy):
    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    async def respond(self, fields, media) -> str:
        self.calls += 1
        return self.text


def test_generate_counts_missing_media_without_asking_the_teacher(tmp_path):
    teacher = Teacher("x")
    loader = MediaLoader(BenchmarkSource.open(str(tmp_path)), DataConfig())
    line = asyncio.run(generate(MC, teacher, loader))
    assert line["status"] == "bad_media" and line["reason"] == "missing_media" and teacher.calls == 0


def test_judge_sees_question_answer_and_observation_only():
    config = VideoP2RConfig()  # evidence judge, in-process

    async def run(text: str) -> dict:
        async with RewardClient.from_config(config) as client:
            return await judge(MC, text, client)

    assert asyncio.run(run(output("I see a yellow circle moving down.", "so", "D")))["sufficient"] is True
    assert asyncio.run(run(output("I see a circle moving down.", "so", "D")))["sufficient"] is False
    refused = asyncio.run(run(output("The answer is D.", "so", "D")))  # the hack guard refuses it first
    assert refused["refused"] is True and refused["sufficient"] is False
