"""`videop2r rewards score` on files: output order and shape, counted skips, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from videop2r.cli import main

GOOD = "<observation> a red ball </observation>\n<think> red, so B </think>\n<answer>B</answer>"


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with path.open("wb") as out:
        for line in lines:
            out.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


def record(**fields) -> str:
    base = {"id": "x", "problem_type": "multiple choice", "response": GOOD, "solution": "<answer>B</answer>"}
    return json.dumps({**base, **fields})


def test_scores_a_file_in_input_order(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [
        record(id="a"),
        record(id=2, problem_type="numerical", response="<think>x</think><answer>3.50</answer>", solution="3.5"),
        "",
        record(id="c", problem_type="Free-Form", response="<answer>a red ball</answer>", solution=None,
               answer="the red balls", perception_verdict=False),
    ])
    out = tmp_path / "out.jsonl"
    assert main(["rewards", "score", str(source), "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", 2, "c"]
    assert lines[0] == {
        "id": "a",
        "perception": {"format": 1, "length": 5},
        # <think> red, so B </think> <answer>B</answer> → 6 whitespace tokens
        "reasoning": {"accuracy": 1.0, "format": 1, "length": 6, "length_reward": 0.0, "total": 2.0},
    }
    assert lines[1]["reasoning"]["accuracy"] == 1.0 and lines[1]["perception"] == {"format": 0, "length": 0}
    assert lines[2]["perception"]["accuracy"] == 0.0 and lines[2]["perception"]["total"] == 0.0
    assert 0 < lines[2]["reasoning"]["accuracy"] < 1
    assert "scored 3 line(s), skipped 0" in capsys.readouterr().err


def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [
        record(id="ok1"),
        "{not json",
        json.dumps({"id": "no-response", "problem_type": "OCR", "answer": "a"}),
        json.dumps([1, 2]),
        record(id="bad-type", problem_type="essay"),
        b'{"id": "latin1", "response": "\xe9"}',
        record(id="ok2"),
    ])
    assert main(["rewards", "score", str(source)]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == ["ok1", "ok2"]
    err = captured.err
    assert f"{source}:2: skipped: not JSON" in err
    assert f"{source}:3: skipped: response: missing field" in err
    assert f"{source}:4: skipped: not a JSON object" in err
    assert f"{source}:5: skipped: unknown problem_type 'essay'" in err
    assert f"{source}:6: skipped: not UTF-8" in err
    assert "scored 2 line(s), skipped 5" in err


def test_tokenizer_option_changes_lengths(tmp_path: Path, bpe_tokenizer_dir: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [record(response="<observation>abc</observation>", id="t")])
    assert main(["rewards", "score", str(source), "--tokenizer", str(bpe_tokenizer_dir)]) == 0
    bpe = json.loads(capsys.readouterr().out)
    assert main(["rewards", "score", str(source), "--tokenizer", "whitespace"]) == 0
    whitespace = json.loads(capsys.readouterr().out)
    assert whitespace["perception"]["length"] == 1  # one whitespace-free run
    assert bpe["perception"]["length"] >= 3  # <observation>, a…c, </observation>


def test_config_overrides_reach_the_scores(tmp_path: Path, capsys) -> None:
    source = write_lines(tmp_path / "in.jsonl", [record(perception_verdict=True)])
    assert main(["rewards", "score", str(source), "reward.perception_length=[1,10]", "reward.length_bonus=0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["perception"]["length_reward"] == 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rewards", "score", "/nonexistent/in.jsonl"], "cannot read"),
        (["rewards", "score", "IN", "--tokenizer", "/nonexistent/tok"], "no such file or directory"),
        (["rewards", "score", "IN", "reward.length_bonus=-1"], "config error: reward.length_bonus"),
    ],
)
def test_unusable_arguments_exit_2(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    source = write_lines(tmp_path / "in.jsonl", [record()])
    argv = [str(source) if arg == "IN" else arg for arg in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_console_script_reads_stdin_and_documents_the_tokenizer(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "videop2r", "rewards", "score", "-"]
    done = subprocess.run(command, input=record(id="s") + "\nnope\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert json.loads(done.stdout)["id"] == "s"
    assert "-:2: skipped: not JSON" in done.stderr
    help_text = subprocess.run(command[:-1] + ["--help"], capture_output=True, text=True, timeout=120).stdout
    assert "whitespace" in help_text and "tokenizer.json" in help_text
