"""The pipeline over a shard with a scripted teacher and real judges: counts, output, resume, steps."""

from __future__ import annotations

import asyncio
import json

import pytest

from videop2r.config import load_config
from videop2r.cot import CoTPipeline, CoTRequest, Shard
from videop2r.data.records import read_records
from videop2r.eval import Policy, RequestFailed

CONFIG = [
    "data.max_frames=4",
    "data.video_max_pixels=7056",
    "data.video_min_pixels=3136",
    "cot.concurrency=4",
]


class Teacher(Policy):
    """Writes each record's reference output, except: a broken template for the shape question, a wrong
    count, an observation without the facts for the description, and no answer at all (unreachable)
    for the word question while `down` is set."""

    def __init__(self, records, down: bool = True) -> None:
        self.outputs = {record.problem: record.output for record in records}
        self.down = down
        self.calls: list[str] = []

    async def respond(self, fields, media) -> str:
        assert media is not None and media.frames.shape[0] == 4  # frames sampled by the data section
        question = fields["problem"]
        self.calls.append(question)
        await asyncio.sleep(0)
        if question.startswith("What word") and self.down:
            raise RequestFailed("teacher unreachable")
        if question.startswith("What shape"):
            return "<think>It is a circle.</think><answer>A</answer>"
        if question.startswith("How many shapes"):
            return "<observation>I see some shapes.</observation><think>Maybe 9.</think><answer>9</answer>"
        if question.startswith("Describe"):
            return (
                "<observation>I see something.</observation>"
                + self.outputs[question].split("</observation>", 1)[1]
            )
        return self.outputs[question]


def pipeline(synth, out, teacher, overrides=(), shard=Shard()) -> CoTPipeline:
    request = CoTRequest(records=str(synth / "eval.jsonl"), output=out, shard=shard, progress=False)
    return CoTPipeline(request, load_config(None, [*CONFIG, *overrides]), teacher=teacher)


def run(synth, out, teacher, steps=("generate", "verify", "judge"), overrides=(), shard=Shard()) -> dict:
    async def go() -> dict:
        async with pipeline(synth, out, teacher, overrides, shard) as p:
            return await p.run(tuple(steps))

    return asyncio.run(go())


def records(synth):
    return read_records(synth / "eval.jsonl")[0]


def test_counts_output_and_resume_of_failed_teacher_calls(synth, tmp_path):
    teacher = Teacher(records(synth))
    counts = run(synth, tmp_path, teacher)
    assert counts == {
        "records": 7,
        "invalid_records": 0,
        "generated": 6,
        "generation_failed": 1,
        "generation_rejected": 0,
        "bad_media": 0,
        "template_failures": 1,
        "low_accuracy": 1,
        "verified": 4,
        "judged": 4,
        "insufficient": 1,
        "refused": 0,
        "judge_failed": 0,
        "kept": 3,
        "pending": 1,
    }
    assert json.loads((tmp_path / "cot.counts.json").read_text()) == counts
    kept = read_records(tmp_path / "cot.jsonl")[0]
    assert [r.problem_id for r in kept] == [
        "synth-eval-00000-colour",
        "synth-eval-00000-direction",
        "synth-eval-00000-distance",
    ]
    assert all(
        r.output and r.observation.startswith("<observation>") and r.process.startswith("<think>")
        for r in kept
    )
    teacher.down = False
    teacher.calls.clear()
    counts = run(synth, tmp_path, teacher)
    assert teacher.calls == ["What word is written in the video?"]  # only the failed record is asked again
    assert (counts["generated"], counts["generation_failed"], counts["kept"], counts["pending"]) == (
        7,
        0,
        4,
        0,
    )
    ledger = (tmp_path / "generate.jsonl").read_text().splitlines()
    assert len(ledger) == 8  # 7 records + the retried one; the later line wins


def test_steps_one_by_one_give_the_same_result(synth, tmp_path):
    teacher = Teacher(records(synth), down=False)
    streamed = run(synth, tmp_path / "streamed", teacher)
    stepwise = tmp_path / "stepwise"
    first = run(synth, stepwise, teacher, ["generate"])
    assert (first["generated"], first["verified"], first["pending"]) == (7, 0, 7)
    assert not (stepwise / "cot.jsonl").exists()
    run(synth, stepwise, teacher, ["verify"])
    assert run(synth, stepwise, teacher, ["judge"]) == streamed
    assert (stepwise / "cot.jsonl").read_text() == (tmp_path / "streamed" / "cot.jsonl").read_text()


def test_openai_judge_over_http_and_sharding(synth, tmp_path, thread_server):
    from services.reward.scripted_judge import create_scripted_judge_app

    class NoForDistance(Teacher):
        async def respond(self, fields, media) -> str:
            text = await super().respond(fields, media)
            return (
                text.replace("</observation>", " #no</observation>")
                if "pixels" in fields["problem"]
                else text
            )

    teacher = NoForDistance(records(synth), down=False)
    with thread_server(create_scripted_judge_app()) as judge:
        overrides = ["reward.judge=openai", f"reward.judge_url={judge.url}"]
        shards = [run(synth, tmp_path, teacher, overrides=overrides, shard=Shard(k, 2)) for k in range(2)]
    assert sum(s["records"] for s in shards) == 7 and all(s["records"] for s in shards)
    # the scripted judge LLM says Yes unless the observation carries "#no": only the distance record is dropped
    assert sum(s["kept"] for s in shards) == 4 and sum(s["insufficient"] for s in shards) == 1
    for k in range(2):
        assert (tmp_path / f"cot.shard-{k:05d}-of-00002.jsonl").exists()
        assert (tmp_path / f"generate.shard-{k:05d}-of-00002.jsonl").exists()


def test_bad_input_is_counted_not_fatal(synth, tmp_path):
    rows = (synth / "eval.jsonl").read_text().splitlines()
    broken = tmp_path / "in"
    broken.mkdir()
    (broken / "videos").symlink_to(synth / "videos", target_is_directory=True)
    missing = json.loads(rows[0]) | {"problem_id": "gone", "path": "videos/eval/nope.mp4"}
    (broken / "eval.jsonl").write_text(
        "\n".join([*rows, json.dumps(missing), "{not json", '{"problem_id": 5}']) + "\n"
    )
    teacher = Teacher(records(synth), down=False)
    counts = run(broken, tmp_path / "out", teacher)
    assert counts["invalid_records"] == 2 and counts["bad_media"] == 1 and counts["records"] == 8
    assert counts["kept"] == 4 and counts["pending"] == 0
    assert len(teacher.calls) == 7  # the record without media never reaches the teacher


def test_missing_teacher_url_is_a_config_error(synth, tmp_path):
    from videop2r.config import ConfigError

    with pytest.raises(ConfigError, match="cot.teacher_url"):
        run(synth, tmp_path, None)
