"""Reading Video-R1 / VideoP2R records as released: validation, kept extras, counted skips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from videop2r.data.records import (
    RecordsError,
    VideoR1Record,
    parse_record,
    read_records,
    write_records,
)

# Shapes of the released files: Video-R1-260k (no CoT), Video-R1-CoT (process) and VideoP2R-CoT.
VIDEO_R1 = [
    {
        "problem_id": 2, "problem": "What appears on the screen during the ascent?", "data_type": "video",
        "problem_type": "multiple choice", "options": ["A. Missile launch", "B. Soviet flag", "C. Text", "D. Map"],
        "process": "", "solution": "<answer>C</answer>", "path": "./LLaVA-Video-178K/videos/ytb_7nRmsEw7nsE.mp4",
        "data_source": "LLaVA-Video-178K/30_60_s_youtube_v0_1",
    },
    {
        "problem_id": 17, "problem": "How many people are in the room?", "data_type": "video",
        "problem_type": "numerical", "options": [], "process": "<think>I count.</think>",
        "solution": "<answer>3</answer>", "path": "./STAR/videos/abc.mp4", "data_source": "STAR",
    },
    {
        "problem_id": 23, "problem": "What text is on the sign?", "data_type": "image", "problem_type": "OCR",
        "options": [], "solution": "<answer>open 24 hours</answer>", "path": "./TextVQA/img/1.jpg",
        "data_source": "TextVQA",
    },
    {
        "problem_id": 31, "problem": "Describe the scene.", "data_type": "video", "problem_type": "free-form",
        "options": [], "solution": "<answer> A man rides a bike. </answer>", "path": "clips/x.mp4",
        "data_source": "LLaVA-Video-178K",
    },
    {
        "problem_id": 44, "problem": "How far did the car travel in metres?", "data_type": "video",
        "problem_type": "regression", "options": [], "solution": "<answer>12.5</answer>", "path": "clips/y.mp4",
        "data_source": "synthetic",
    },
]
VIDEOP2R_COT = {
    "problem_id": 7, "problem": "Which colour is the ball?", "data_type": "video", "problem_type": "multiple choice",
    "options": ["A. red", "B. blue"], "solution": "<answer>B</answer>", "answer": "B", "path": "v/7.mp4",
    "data_source": "CLEVRER", "observation": "<observation>A blue ball rolls.</observation>",
    "process": "<think>The ball is blue.</think>",
    "output": "<observation>A blue ball rolls.</observation><think>The ball is blue.</think><answer>B</answer>",
    "teacher": "Qwen2.5-VL-72B", "judge_verdict": "Yes",
}


def _skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("videop2r_samples_skipped_total", {"reason": reason}) or 0.0


def test_reads_json_list_as_released(tmp_path: Path) -> None:
    path = tmp_path / "Video-R1-260k.json"
    path.write_text(json.dumps(VIDEO_R1 + [VIDEOP2R_COT]))
    records, skipped = read_records(path)
    assert skipped == []
    assert [r.problem_id for r in records] == [2, 17, 23, 31, 44, 7]
    assert [r.problem_type for r in records] == [
        "multiple choice", "numerical", "OCR", "free-form", "regression", "multiple choice"]
    assert [r.ground_truth for r in records] == ["C", "3", "open 24 hours", "A man rides a bike.", "12.5", "B"]
    assert records[2].data_type == "image"
    assert records[0].media_relpath == "LLaVA-Video-178K/videos/ytb_7nRmsEw7nsE.mp4"
    assert records[0].media_path(tmp_path) == tmp_path / "LLaVA-Video-178K/videos/ytb_7nRmsEw7nsE.mp4"


def test_cot_fields_and_unknown_fields_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "cot.jsonl"
    path.write_text(json.dumps(VIDEOP2R_COT) + "\n")
    (record,), skipped = read_records(path)
    assert not skipped
    assert record.observation.startswith("<observation>") and record.process.startswith("<think>")
    assert record.output.endswith("<answer>B</answer>")
    assert record.model_extra == {"teacher": "Qwen2.5-VL-72B", "judge_verdict": "Yes"}
    dumped = record.to_json()
    assert dumped["teacher"] == "Qwen2.5-VL-72B" and dumped["judge_verdict"] == "Yes"
    assert parse_record(dumped) == record


def test_answer_field_is_the_fallback_ground_truth() -> None:
    record = parse_record({**VIDEO_R1[1], "solution": None, "answer": 3})
    assert record.ground_truth == "3"
    record = parse_record({**VIDEO_R1[1], "solution": "no tags here", "answer": "4"})
    assert record.ground_truth == "4"


def test_problem_type_spellings_are_folded() -> None:
    assert parse_record({**VIDEO_R1[0], "problem_type": "Multiple_Choice"}).problem_type == "multiple choice"
    assert parse_record({**VIDEO_R1[2], "problem_type": "ocr"}).problem_type == "OCR"
    assert parse_record({**VIDEO_R1[3], "problem_type": "free form"}).problem_type == "free-form"


BAD = [
    ({**VIDEO_R1[0], "problem_id": 100, "problem_type": "essay"}, "problem_type"),
    ({**VIDEO_R1[0], "problem_id": 101, "options": []}, "without options"),
    ({**VIDEO_R1[1], "problem_id": 102, "solution": "3"}, "no ground truth"),
    ({**VIDEO_R1[1], "problem_id": 103, "data_type": "audio"}, "data_type"),
    ({k: v for k, v in VIDEO_R1[1].items() if k != "path"} | {"problem_id": 104}, "path"),
    ({**VIDEO_R1[1], "problem_id": 105, "problem": ""}, "problem"),
    ({k: v for k, v in VIDEO_R1[1].items() if k != "problem_id"}, "problem_id"),
]


def test_bad_jsonl_records_are_logged_skipped_and_counted(tmp_path: Path, caplog) -> None:
    lines = [json.dumps(VIDEO_R1[0])]
    lines += [json.dumps(bad) for bad, _ in BAD]
    lines += ["{not json", "[1, 2]", "", json.dumps(VIDEO_R1[4])]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before_record, before_json = _skipped("invalid_record"), _skipped("invalid_json")
    with caplog.at_level(logging.WARNING, logger="videop2r.data.records"):
        records, skipped = read_records(path)

    assert [r.problem_id for r in records] == [2, 44]
    assert len(skipped) == len(BAD) + 2
    for skip, (bad, needle) in zip(skipped, BAD):
        assert skip.reason == "invalid_record"
        assert skip.problem_id == bad.get("problem_id")
        assert needle in skip.message
    assert skipped[len(BAD)].reason == "invalid_json" and skipped[len(BAD)].location == "line 9"
    assert skipped[len(BAD) + 1].location == "line 10" and "expected an object" in skipped[-1].message
    # one log line per bad record, naming its id or its line
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(skipped)
    assert "problem_id=100" in warnings[0] and "line 2" in warnings[0]
    assert "line 9" in warnings[len(BAD)] and "not valid JSON" in warnings[len(BAD)]
    assert _skipped("invalid_record") - before_record == len(BAD) + 1
    assert _skipped("invalid_json") - before_json == 1


def test_bad_json_list_entries_are_located_by_index(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text(json.dumps([VIDEO_R1[0], BAD[0][0], "text", VIDEO_R1[2]]))
    records, skipped = read_records(path)
    assert [r.problem_id for r in records] == [2, 23]
    assert [s.location for s in skipped] == ["index 1", "index 2"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.json", "[{", "not valid JSON"),
        ("object.json", '{"data": []}', "expected a JSON list"),
    ],
)
def test_unreadable_files_raise(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RecordsError, match=message):
        read_records(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RecordsError, match="not found"):
        read_records(tmp_path / "absent.jsonl")


def test_suffixless_file_is_sniffed(tmp_path: Path) -> None:
    (tmp_path / "as_list").write_text(json.dumps(VIDEO_R1[:2]))
    (tmp_path / "as_lines").write_text("\n".join(json.dumps(r) for r in VIDEO_R1[:2]))
    assert len(read_records(tmp_path / "as_list")[0]) == 2
    assert len(read_records(tmp_path / "as_lines")[0]) == 2


def test_write_records_round_trips_byte_stable(tmp_path: Path) -> None:
    records = [VideoR1Record.model_validate(r) for r in VIDEO_R1 + [VIDEOP2R_COT]]
    for name in ("out.jsonl", "out.json"):
        first = write_records(tmp_path / name, records).read_bytes()
        again, skipped = read_records(tmp_path / name)
        assert not skipped and again == records
        assert write_records(tmp_path / name, again).read_bytes() == first
    assert not list(tmp_path.glob("*.tmp"))
