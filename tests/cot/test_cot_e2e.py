"""`videop2r cot` end to end: the embedded rollout server as teacher (a real tiny Qwen2.5-VL that always
writes "<observation>yellow</observation><think>so</think><answer>D</answer>") and the evidence judge."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from videop2r.data.records import read_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SMALL = ["data.max_frames=4", "data.video_max_pixels=7056", "data.video_min_pixels=3136", "cot.max_tokens=24"]


def videop2r(*args: str) -> list[str]:
    return [sys.executable, "-m", "videop2r", *args]


def expected(records) -> tuple[set[str], set[str]]:
    """(verified, kept) ids for the scripted teacher: answer D verifies only multiple-choice questions whose
    truth is D; the observation "yellow" suffices only where the one fact to see is the colour yellow."""
    verified = {
        str(r.problem_id) for r in records if r.problem_type == "multiple choice" and r.ground_truth == "D"
    }
    kept = {
        str(r.problem_id)
        for r in records
        if str(r.problem_id) in verified and r.evidence == ["colour: yellow"]
    }
    return verified, kept


def test_cot_run_against_the_embedded_server(synth, emitter_server, scripted, tmp_path):
    records = read_records(synth / "eval.jsonl")[0]
    verified, kept = expected(records)
    assert kept, "the fixture must keep at least one record"
    out = tmp_path / "out"
    done = subprocess.run(
        videop2r(
            "cot",
            "run",
            "-r",
            str(synth / "eval.jsonl"),
            "-o",
            str(out),
            "--teacher",
            emitter_server.url,
            "--judge",
            "evidence",
            "--no-progress",
            *SMALL,
        ),
        capture_output=True,
        text=True,
        env=scripted.child_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    counts = json.loads((out / "cot.counts.json").read_text())
    assert json.loads(done.stdout) == counts
    assert counts["records"] == counts["generated"] == len(records)
    assert counts["template_failures"] == 0 and counts["low_accuracy"] == len(records) - len(verified)
    assert counts["verified"] == len(verified) and counts["kept"] == len(kept)
    assert counts["insufficient"] == len(verified) - len(kept) and counts["pending"] == 0
    rows = [json.loads(line) for line in (out / "cot.jsonl").read_text().splitlines()]
    assert {row["problem_id"] for row in rows} == kept
    assert all(
        row["output"] == scripted.EMITTED and row["observation"] == "<observation>yellow</observation>"
        for row in rows
    )


def test_killed_cot_run_resumes(synth, emitter_server, scripted, tmp_path):
    rows = [json.loads(line) for line in (synth / "eval.jsonl").read_text().splitlines()]
    data = tmp_path / "data"
    data.mkdir()
    (data / "videos").symlink_to(synth / "videos", target_is_directory=True)
    copies = 3
    with open(data / "eval.jsonl", "w") as handle:
        for copy in range(copies):
            for row in rows:
                handle.write(json.dumps({**row, "problem_id": f"{row['problem_id']}-{copy}"}) + "\n")
    total = copies * len(rows)
    out = tmp_path / "out"
    argv = videop2r(
        "cot",
        "run",
        "-r",
        str(data / "eval.jsonl"),
        "-o",
        str(out),
        "--teacher",
        emitter_server.url,
        "--judge",
        "evidence",
        "--concurrency",
        "1",
        "--no-progress",
        *SMALL,
        "cot.media=frames",
    )
    finished = scripted.run_until_lines(argv, out / "generate.jsonl", 3, tmp_path / "killed.log")
    assert 3 <= finished < total
    probe = httpx.post(
        emitter_server.url + "/v1/chat/completions",
        timeout=120,
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24},
    )
    per_completion = probe.json()["usage"]["completion_tokens"]
    emitter_server.wait_idle()
    before = emitter_server.counter("videop2r_rollout_generated_tokens_total")
    done = subprocess.run(argv, capture_output=True, text=True, env=scripted.child_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    asked = (emitter_server.counter("videop2r_rollout_generated_tokens_total") - before) / per_completion
    assert asked == total - finished  # the teacher is not asked again for a generated record
    for step in ("generate", "verify", "judge"):
        ids = [json.loads(line)["id"] for line in (out / f"{step}.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids))
    _, kept = expected(read_records(synth / "eval.jsonl")[0])
    counts = json.loads((out / "cot.counts.json").read_text())
    assert (counts["generated"], counts["kept"], counts["pending"]) == (total, copies * len(kept), 0)
