"""The synthetic video QA set: coverage, determinism, and records that tell the truth about the pixels."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from videop2r.cli import main
from videop2r.config import DataConfig
from videop2r.data.glyphs import render_word
from videop2r.data.records import PROBLEM_TYPES, read_records
from videop2r.data.shapes import BACKGROUND, COLOURS
from videop2r.data.synth import synthesize
from videop2r.data.video import load_video

TEMPLATE = re.compile(r"^<observation>(.+)</observation><think>(.+)</think><answer>(.+)</answer>$", re.DOTALL)


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(out, 10, seed=5, splits={"train": 10, "eval": 5}, progress=False)
    records = {name: read_records(split.records_jsonl) for name, split in summary.splits.items()}
    return out, summary, records


def _facts(record) -> dict[str, str]:
    return dict(fact.split(": ", 1) for fact in record.evidence)


def test_covers_all_five_problem_types(synth_set) -> None:
    out, summary, records = synth_set
    assert set(summary.splits) == {"train", "eval"}
    for name, split in summary.splits.items():
        recs, skipped = records[name]
        assert skipped == []
        assert split.clips == len(list((out / "videos" / name).glob("*.mp4")))
        assert split.records == len(recs)
        assert set(split.by_problem_type) == set(PROBLEM_TYPES)
        assert sum(split.by_problem_type.values()) == len(recs)
        assert len({r.problem_id for r in recs}) == len(recs)
        json_recs, _ = read_records(split.records_json)
        assert json_recs == recs
        for record in recs:
            assert record.media_path(out).is_file()
            assert record.data_type == "video" and record.evidence
    train_ids = {r.problem_id for r in records["train"][0]}
    assert not train_ids & {r.problem_id for r in records["eval"][0]}


def _digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_clips_independent_of_count(tmp_path: Path) -> None:
    first = _digest(synthesize(tmp_path / "a", 5, seed=11, progress=False).out_dir)
    second = _digest(synthesize(tmp_path / "b", 5, seed=11, progress=False).out_dir)
    assert first == second and any(k.endswith(".mp4") for k in first)
    fewer = _digest(synthesize(tmp_path / "c", 3, seed=11, progress=False).out_dir)
    for index in range(3):
        key = f"videos/train/{index:05d}.mp4"
        assert fewer[key] == first[key]
    other = _digest(synthesize(tmp_path / "d", 5, seed=12, progress=False).out_dir)
    assert other["train.jsonl"] != first["train.jsonl"]


def test_option_order_is_fixed_per_question(synth_set) -> None:
    _, _, records = synth_set
    options = defaultdict(set)
    for recs, _ in records.values():
        for record in recs:
            if record.problem_type == "multiple choice":
                options[record.problem].add(tuple(record.options))
    assert len(options) == 3  # colour, shape, direction
    assert all(len(orders) == 1 for orders in options.values())


def test_reference_outputs_follow_the_template_and_the_observation(synth_set) -> None:
    _, _, records = synth_set
    for recs, _ in records.values():
        for record in recs:
            assert record.output == record.observation + record.process + record.solution
            found = TEMPLATE.match(record.output)
            assert found, record.output
            observation, think, answer = found.groups()
            assert answer == record.ground_truth == record.answer
            assert len(record.output.split()) < 40  # short: a tiny model's target
            facts = _facts(record)
            if record.problem_type == "multiple choice":
                chosen = next(o for o in record.options if o.startswith(answer + ". "))
                value = chosen.split(". ", 1)[1]
                assert value in observation and value in facts.values()
            elif record.problem_type == "numerical":
                words = ("zero", "one", "two", "three", "four", "five")
                assert observation.startswith(f"I see {words[int(answer)]} shape")
                assert facts["count"] == answer
            elif record.problem_type == "OCR":
                assert answer in observation and facts["word"] == answer
            elif record.problem_type == "free-form":
                assert all(facts[k] in observation and facts[k] in answer for k in ("colour", "shape", "direction"))
            else:
                start, end = (int(v) for v in re.findall(r"[xy]=(\d+)", observation))
                assert abs(end - start) == int(answer) == int(facts["distance"])


def _mask(frame: np.ndarray) -> np.ndarray:
    return np.abs(frame.astype(int) - np.array(BACKGROUND)).sum(axis=2) > 60


def _nearest_colour(pixels: np.ndarray) -> str:
    mean = pixels.reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: np.abs(np.array(COLOURS[name]) - mean).sum())


def _shape_of(mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
    return "square" if fill > 0.95 else "circle" if fill > 0.65 else "triangle"


def test_evidence_matches_the_pixels(synth_set) -> None:
    out, _, records = synth_set
    every_frame = DataConfig(fps=8.0, min_frames=2, max_frames=64, video_min_pixels=84 * 84,
                             video_max_pixels=84 * 84)
    checked = defaultdict(int)
    for record in records["train"][0]:
        clip = load_video(record.media_path(out), every_frame)
        assert clip.frames.shape[1:] == (84, 84, 3)
        assert len(clip.frame_indices) >= clip.total_frames - 1
        first, last = clip.frames[0], clip.frames[-1]
        facts = _facts(record)
        if "colour" in facts:
            assert _nearest_colour(first[_mask(first)]) == facts["colour"]
        if "shape" in facts:
            assert _shape_of(_mask(first)) == facts["shape"]
        if "direction" in facts:
            (y0, x0), (y1, x1) = (np.argwhere(_mask(f)).mean(axis=0) for f in (first, last))
            steps = clip.frame_indices[-1] - clip.frame_indices[0]
            per_frame = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}[facts["direction"]]
            moved = np.array([y1 - y0, x1 - x0])
            assert np.dot(moved, per_frame) > 0 and abs(moved[0] * per_frame[1] - moved[1] * per_frame[0]) < 1.0
            if "distance" in facts:  # total travel over all frames, measured on the sampled span
                full = int(facts["distance"]) * steps / (clip.total_frames - 1)
                assert abs(np.linalg.norm(moved) - full) < 1.5
        if "count" in facts:
            cells = [_mask(first)[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28].any() for r in range(3) for c in range(3)]
            assert sum(cells) == int(facts["count"])
        if "word" in facts:
            sampled = load_video(record.media_path(out), DataConfig(video_min_pixels=84 * 84, video_max_pixels=84 * 84))
            dark = [(f.mean(axis=2) < 64) for f in sampled.frames]
            shown = [d for d in dark if d.any()]
            assert shown, "the sampler must see the word at least once"
            assert not (clip.frames[0].mean(axis=2) < 64).any()
            glyphs = render_word(facts["word"], 2)
            top, left = (84 - glyphs.shape[0]) // 2, (84 - glyphs.shape[1]) // 2
            expected = np.zeros((84, 84), dtype=bool)
            expected[top : top + glyphs.shape[0], left : left + glyphs.shape[1]] = glyphs
            assert (shown[0] == expected).mean() > 0.99
        checked[record.problem_type] += 1
    assert set(checked) == set(PROBLEM_TYPES)


def test_default_sampling_keeps_temporal_positions_apart(synth_set) -> None:
    """Qwen2.5-VL's temporal interval is tokens_per_second × int(2 / fps): the sampled fps must be <= 2."""
    out, _, records = synth_set
    for path in sorted({r.media_path(out) for r in records["train"][0]}):
        clip = load_video(path, DataConfig())
        assert int(2 / clip.sample_fps) >= 1
        assert int(2 / clip.source_fps) == 0  # declaring the 8 fps source rate would collapse them


def test_question_filter(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, 4, seed=2, questions=["colour", "direction"], progress=False)
    recs, _ = read_records(summary.splits["train"].records_jsonl)
    assert summary.splits["train"].by_problem_type == {"multiple choice": 8}
    assert {r.problem for r in recs} == {"What colour is the moving shape?", "In which direction does the shape move?"}
    with pytest.raises(ValueError, match="unknown question kinds"):
        synthesize(tmp_path / "x", 1, questions=["smell"], progress=False)


def test_cli_synth(tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    code = main(["data", "synth", "--out", str(out), "--num", "3", "--seed", "1", "--split", "train",
                 "--split", "eval=2", "--questions", "shape,count,word", "--no-json", "--durations", "4"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train: 3 clips" in printed and "eval: 2 clips" in printed
    recs, skipped = read_records(out / "eval.jsonl")
    assert not skipped and {r.problem_type for r in recs} == {"multiple choice", "numerical"}
    assert not (out / "train.json").exists()
    assert len(list((out / "videos" / "train").glob("*.mp4"))) == 3
    clip = load_video(out / "videos" / "train" / "00000.mp4", DataConfig(nframes=8))
    assert clip.total_frames == 32 and clip.sample_fps == 2.0  # 4 s at 8 fps


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--questions", "colour,smell"], "unknown question kinds"),
        (["--split", "train=many"], "must be an integer"),
        (["--size", "13"], "size must be"),
        (["--durations", "2,x"], "expected integers"),
        (["--durations", "0"], "must be positive"),
    ],
)
def test_cli_synth_rejects_bad_arguments(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    code = main(["data", "synth", "--out", str(tmp_path / "o"), "--num", "1", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_bitmap_font() -> None:
    mask = render_word("Cab", 3)
    assert mask.shape == (21, (6 * 3 - 1) * 3) and mask.dtype == bool
    assert mask[:, 15:18].sum() == 0  # the blank column between letters
    assert not np.array_equal(render_word("A"), render_word("B"))
    with pytest.raises(ValueError, match="A-Z only"):
        render_word("hi!")
