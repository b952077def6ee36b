"""`videop2r eval` end to end on a real tiny Qwen2.5-VL through the embedded rollout server.

The checkpoint is the scripted model of scripted_model.py: it answers every prompt with
`EMITTED` ("...<answer>D</answer>"), so every number below is computed by hand from the fixtures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SMALL = ["eval.frames=4", "eval.min_pixels=3136", "eval.max_pixels=3136", "eval.max_new_tokens=24"]


def videop2r(*args: str) -> list[str]:
    return [sys.executable, "-m", "videop2r", *args]


def run(argv: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_model_dir_through_its_own_embedded_server(release, emitter_server, emitted, scripted, tmp_path):
    """--model DIR: eval serves the checkpoint itself (and stops the server); the perception-sufficiency
    diagnostic goes to another server's OpenAI-compatible endpoint."""
    out = tmp_path / "out"
    done = run(
        videop2r(
            "eval",
            "-b",
            "vsibench,synthetic",
            "-d",
            str(release),
            "--model",
            str(emitter_server.model),
            "-o",
            str(out),
            "--name",
            "emitter",
            "--sufficiency-endpoint",
            emitter_server.url,
            "--no-progress",
            *SMALL,
        ),
        scripted.child_env(),
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["transport"] == "generate"  # exact prompt ids and frames over /generate
    vsi, synthetic = (summary["benchmarks"][name] for name in ("vsibench", "synthetic"))
    # VSI-Bench: multiple choice 3 (A), 4 (D), 5 (B) + bad rows 7, 8 -> 1/5; numerical all 0 -> (0.2 + 0) / 2
    assert vsi["score"] == pytest.approx(0.1)
    assert vsi["statuses"] == {"ok": 6, "bad_row": 2, "missing_media": 1}
    assert (vsi["format_rate"], vsi["mismatch_rate"]) == (1.0, None)
    # sufficiency: the text model reads "yellow" and answers D as well: 1 of 9 items right
    assert vsi["sufficiency"] == pytest.approx(1 / 9) and vsi["sufficiency_items"] == 6
    assert synthetic["score"] == pytest.approx(0.25)  # s-0-colour (D) of 4 rows, one of them invalid
    assert (
        summary["average"] == pytest.approx(0.1) and summary["average_over"] == 1
    )  # synthetic is no paper column
    assert "| emitter | 10.0 | – | – | – | – | – | – | 10.0 |" in done.stdout
    items = {row["id"]: row for row in map(json.loads, (out / "vsibench.jsonl").read_text().splitlines())}
    assert (
        items["4"]["response"] == emitted and items["4"]["prediction"] == "D" and items["4"]["score"] == 1.0
    )
    assert items["4"]["sufficiency"] == {"prediction": "D", "score": 1.0}
    assert "serving" in (out / "logs" / "eval-rollout.log").read_text()  # the run's own server logged there


def test_killed_run_resumes_without_redoing_finished_items(release, emitter_server, scripted, tmp_path):
    """SIGKILL `videop2r eval` mid-run, rerun it: every item once, no finished item asked again.

    The chat transport (no processor to load) keeps the two runs short; the server's generated-token
    counter tells how many completions the rerun asked for (each one is the same EMITTED text)."""
    rows = [json.loads(line) for line in (release / "synthetic" / "eval.jsonl").read_text().splitlines()[:3]]
    data = tmp_path / "data"
    data.mkdir()
    (data / "videos").symlink_to(release / "synthetic" / "videos", target_is_directory=True)
    with open(data / "eval.jsonl", "w") as handle:
        for copy in range(4):
            for row in rows:
                handle.write(json.dumps({**row, "problem_id": f"{row['problem_id']}-{copy}"}) + "\n")
    out = tmp_path / "out"
    argv = videop2r(
        "eval",
        "-b",
        "synthetic",
        "-d",
        str(data),
        "-e",
        emitter_server.url,
        "-o",
        str(out),
        "--concurrency",
        "1",
        "--transport",
        "chat",
        "--no-progress",
        *SMALL,
        "eval.chat_media=frames",
    )
    finished = scripted.run_until_lines(argv, out / "synthetic.jsonl", 3, tmp_path / "killed.log")
    assert 3 <= finished < 12
    probe = httpx.post(
        emitter_server.url + "/v1/chat/completions",
        timeout=120,
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24},
    )
    per_completion = probe.json()["usage"]["completion_tokens"]
    emitter_server.wait_idle()  # the killed run's last request may still be generating
    tokens = "videop2r_rollout_generated_tokens_total"
    before = emitter_server.counter(tokens)
    run(argv, scripted.child_env())
    assert (emitter_server.counter(tokens) - before) / per_completion == 12 - finished
    lines = [json.loads(line) for line in (out / "synthetic.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and len({line["id"] for line in lines}) == 12
    report = json.loads((out / "summary.json").read_text())["benchmarks"]["synthetic"]
    assert report["resumed"] == finished and report["score"] == pytest.approx(1 / 3)
