"""Each adapter on its fixture, in its benchmark's own release format (tests/eval/fixtures)."""

from __future__ import annotations

import pytest

from videop2r.eval import AnnotationError, BadRow, BenchmarkSource, EvalItem, benchmark_names, get_benchmark


def read(release, name: str) -> tuple[dict[str, EvalItem], dict[str, BadRow]]:
    rows = list(get_benchmark(name).items(BenchmarkSource.open(str(release / name))))
    items = {row.id: row for row in rows if isinstance(row, EvalItem)}
    bad = {row.id: row for row in rows if isinstance(row, BadRow)}
    assert len(items) + len(bad) == len(rows)
    return items, bad


def test_registry_names_aliases_and_order():
    assert benchmark_names() == [
        "vsibench",
        "videommmu",
        "mmvu",
        "vcrbench",
        "mvbench",
        "tempcompass",
        "videomme",
        "synthetic",
    ]
    assert get_benchmark("VSI-Bench").name == "vsibench"
    assert get_benchmark("Video_MME").name == "videomme"
    with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
        get_benchmark("nope")


def test_vsibench(release):
    items, bad = read(release, "vsibench")
    assert sorted(items) == ["1", "2", "3", "4", "5", "6", "9"]
    count = items["1"]
    assert (count.problem_type, count.metric, count.answer) == ("numerical", "mra", "4")
    assert count.media.keys == ("arkitscenes/41069025.mp4",)
    direction = items["3"]
    assert (direction.problem_type, direction.metric, direction.answer) == (
        "multiple choice",
        "accuracy",
        "A",
    )
    assert direction.options == ("A. left", "B. right")
    assert direction.groups == {"question_type": "object_rel_direction_easy"}
    assert items["6"].media.keys == ("scannetpp/not_in_this_release.mp4",)
    assert bad["7"].reason == "unknown_question_type"
    assert bad["row:test.jsonl line 8"].reason == "unreadable_row"


def test_videommmu_tracks_open_questions_and_question_image(release):
    items, bad = read(release, "videommmu")
    assert sorted(items) == [
        "Adaptation/validation_Art_Theory_1",
        "Comprehension/validation_Art_Theory_1",
        "Comprehension/validation_Math_3",
        "Perception/validation_Art_Theory_1",
    ]
    perception = items["Perception/validation_Art_Theory_1"]
    assert perception.options == ("A. Red", "B. Blue", "C. Green", "D. Yellow") and perception.answer == "B"
    assert perception.media.keys[0] == "Art/validation_Art_Theory_1.mp4"  # subject Art_Theory -> folder Art
    assert perception.groups == {"track": "Perception", "subject": "Art_Theory"}
    open_question = items["Comprehension/validation_Math_3"]
    assert (open_question.metric, open_question.problem_type, open_question.options) == (
        "open_match",
        "numerical",
        (),
    )
    assert open_question.media.keys[0] == "Science/validation_Math_3.mp4"
    adaptation = items["Adaptation/validation_Art_Theory_1"]
    assert adaptation.media.append_image is not None and adaptation.media.append_image[:4] == b"\x89PNG"
    assert perception.media.append_image is None
    assert bad["Comprehension/validation_Math_4"].reason == "answer_not_in_options"


def test_mmvu_multiple_choice_subset(release):
    items, bad = read(release, "mmvu")
    assert sorted(items) == ["validation_1", "validation_3"]  # validation_0 is open-ended: not in MMVU (MC)
    thermo = items["validation_3"]
    assert thermo.options == (
        "A. Isothermal compression",
        "B. Adiabatic compression",
        "C. Isobaric compression",
        "D. Adiabatic expansion",
    )  # the empty choice E is no option
    assert thermo.media.keys == ("videos/Thermodynamics/0.mp4",)
    assert thermo.groups == {"subject": "Thermodynamics"}
    assert bad["validation_8"].reason == "answer_not_in_options"


def test_vcrbench_multiple_choice_subset_strips_appended_options(release):
    items, bad = read(release, "vcrbench")
    assert sorted(items) == ["3", "5"] and not bad
    plot = items["3"]
    assert plot.question == "Why did the man not go back to the car?"
    assert plot.options[-1] == "D. A second explosion happened." and plot.answer == "D"
    assert plot.media.keys == ("video/videoEspresso/clip_a.mp4",)
    assert items["5"].groups == {"dimension": "Temporal Spatial Reasoning", "duration": "300+"}
    assert items["5"].options == ("A. Jumps.", "B. Sits.", "C. Runs.")


def test_mvbench_tasks_bounds_and_frame_folders(release):
    items, bad = read(release, "mvbench")
    antonym = items["action_antonym/0"]
    assert antonym.options == ("A. Not sure", "B. Scattering something down", "C. Piling something up")
    assert antonym.answer == "C" and antonym.media.keys == ("video/ssv2_video/166583.mp4",)
    assert antonym.media.bound is None
    sequence = items["action_sequence/0"]
    assert sequence.media.bound == (0.5, 2.0) and sequence.groups == {"task": "Action Sequence"}
    episodic = items["episodic_reasoning/0"]
    assert episodic.media.kind == "frames" and episodic.media.frames_fps == 3.0 and episodic.answer == "B"
    assert bad["action_antonym/1"].reason == "answer_not_in_options"


def test_tempcompass_options_from_question_lines(release):
    items, bad = read(release, "tempcompass")
    first = items["1034419625/action/0"]
    assert first.question == "What is the man doing in the video?"
    assert first.options == (
        "A. dunking a basketball",
        "B. dribbling a basketball",
        "C. passing a basketball",
    )
    assert first.answer == "A" and first.media.keys[0] == "videos/1034419625.mp4"
    assert items["1034419625_reverse/direction/0"].answer == "D"
    assert bad["1111657885/speed/0"].reason == "missing_field"


def test_videomme_parquet(release):
    items, bad = read(release, "videomme")
    assert sorted(items) == ["001-1", "001-2", "002-1"]
    first = items["001-1"]
    assert first.options == ("A. 3.", "B. 4.", "C. 5.", "D. 6.") and first.answer == "C"
    assert first.media.keys[:3] == ("data/fFjv93ACGo8.mp4", "data/fFjv93ACGo8.MP4", "data/fFjv93ACGo8.mkv")
    assert first.groups == {"duration": "short", "domain": "Knowledge", "task_type": "Counting Problem"}
    assert bad["002-2"].reason == "answer_not_in_options"


def test_synthetic_records(release):
    items, bad = read(release, "synthetic")
    assert sorted(items) == ["s-0-colour", "s-0-distance", "s-1-count"]
    assert items["s-0-colour"].groups == {"question": "colour"}  # the trainer's question kind
    assert items["s-0-distance"].problem_type == "regression" and items["s-0-distance"].answer == "40"
    assert items["s-0-colour"].evidence == ("colour: yellow",)
    assert bad["s-1-broken"].reason == "invalid_record"


def test_uri_naming_a_file_and_a_missing_release(release, tmp_path):
    source = BenchmarkSource.open(str(release / "synthetic" / "eval.jsonl"))
    assert source.annotation == "eval.jsonl"
    assert len(list(get_benchmark("synthetic").items(source))) == 4
    with pytest.raises(AnnotationError, match="no annotation file"):
        list(get_benchmark("vsibench").items(BenchmarkSource.open(str(tmp_path))))
    (tmp_path / "meta_info_video.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        list(get_benchmark("vcrbench").items(BenchmarkSource.open(str(tmp_path))))


def test_duplicate_ids_become_bad_rows(tmp_path):
    row = (
        '{"id": 1, "dataset": "d", "scene_name": "s", "question_type": "object_counting", '
        '"question": "How many?", "ground_truth": "2"}\n'
    )
    (tmp_path / "test.jsonl").write_text(row * 2)
    rows = list(get_benchmark("vsibench").items(BenchmarkSource.open(str(tmp_path))))
    assert isinstance(rows[0], EvalItem) and isinstance(rows[1], BadRow) and rows[1].reason == "duplicate_id"
