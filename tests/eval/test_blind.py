"""`videop2r eval --blind`: every item again with blank frames, both accuracies in the summary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from videop2r.config import EvalConfig
from videop2r.eval import BenchmarkRunner, BenchmarkSource, Policy, get_benchmark
from videop2r.eval.blind import BLIND_DIR, blank
from videop2r.eval.clips import LoadedMedia
from videop2r.eval.summary import write_summary

CONFIG = EvalConfig(frames=4, min_pixels=3136, max_pixels=3136, concurrency=3)
VSI_ANSWERS = {"How many chair": "4 chairs", "If I am standing": "A", "What is the length": "140"}


class LookingPolicy(Policy):
    """Answers VSI-Bench right only when it can see something: a model that uses the video."""

    def __init__(self) -> None:
        self.shapes: list[tuple] = []

    async def respond(self, fields, media) -> str:
        self.shapes.append(media.frames.shape)
        await asyncio.sleep(0)
        answer = "0"
        if media.frames.any():
            answer = next((a for prefix, a in VSI_ANSWERS.items() if fields["problem"].startswith(prefix)), "D")
        return f"<observation>I see it.</observation><think>So.</think><answer>{answer}</answer>"


def test_blank_keeps_the_shape_and_drops_the_file():
    video = LoadedMedia("video", "a.mp4", frames=np.full((4, 8, 8, 3), 200, np.uint8), fps=2.0, source=b"mp4")
    blanked = blank(video)
    assert blanked.frames.shape == (4, 8, 8, 3) and not blanked.frames.any() and blanked.fps == 2.0
    assert blanked.source is None and video.frames.all()  # the original is untouched
    image = blank(LoadedMedia("image", "a.png", image=np.ones((5, 5, 3), np.uint8)))
    assert image.image.shape == (5, 5, 3) and not image.image.any()


def test_the_blind_pass_shows_what_the_video_is_worth(release, tmp_path):
    source = BenchmarkSource.open(str(release / "vsibench"))
    adapter = get_benchmark("vsibench")
    seeing, blind = LookingPolicy(), LookingPolicy()
    report = asyncio.run(BenchmarkRunner(adapter, source, seeing, tmp_path, CONFIG, progress=False).run())
    blind_report = asyncio.run(BenchmarkRunner(adapter, source, blind, tmp_path / BLIND_DIR, CONFIG, progress=False,
                                               blind=True).run())
    assert sorted(seeing.shapes) == sorted(blind.shapes)  # same frames count and size, only blank
    assert (tmp_path / BLIND_DIR / "vsibench.jsonl").is_file() and (tmp_path / "vsibench.jsonl").is_file()
    assert report.score > blind_report.score
    assert blind_report.statuses == report.statuses  # the same items, answered
    path = write_summary(tmp_path, "looking", [report], {"frames": 4}, [blind_report])
    text = path.read_text()
    assert "## Without the video (--blind)" in text
    delta = f"{100 * (report.score - blind_report.score):+.1f}"
    row = f"| VSI-Bench | {100 * report.score:.1f} | {100 * blind_report.score:.1f} | {delta} |"
    assert row in text
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["blind"] == {"vsibench": {"with_video": report.score, "blank_frames": blind_report.score}}
    # without --blind the summary has no such section
    write_summary(tmp_path, "looking", [report], {"frames": 4})
    assert "--blind" not in (tmp_path / "summary.md").read_text()


@pytest.mark.integration
@pytest.mark.slow
def test_cli_blind_on_a_model_that_ignores_the_video(release, emitter_server, scripted, tmp_path):
    """The scripted model answers the same whatever it sees: Δ is 0, the ablation says so."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "videop2r", "eval", "-b", "vsibench", "-d", str(release / "vsibench"), "--endpoint",
            emitter_server.url, "-o", str(out), "--name", "emitter", "--blind", "--no-progress",
            "eval.frames=4", "eval.min_pixels=3136", "eval.max_pixels=3136", "eval.max_new_tokens=24"]
    done = subprocess.run(argv, capture_output=True, text=True, env=scripted.child_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["blind"]["vsibench"] == {"with_video": pytest.approx(0.1), "blank_frames": pytest.approx(0.1)}
    assert "| VSI-Bench | 10.0 | 10.0 | +0.0 |" in done.stdout and "--blind" in (out / "summary.md").read_text()
    assert len((out / BLIND_DIR / "vsibench.jsonl").read_text().splitlines()) == 9
