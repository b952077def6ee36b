"""The eval command's plumbing without a server: data URIs, resumable output folders, CLI errors."""

from __future__ import annotations

import json

import pytest

from videop2r.cli import main
from videop2r.config import ConfigError
from videop2r.eval.session import EvalRequest, benchmark_uri, check_output

SETTINGS = {"model": "m", "transport": "generate", "frames": 32, "temperature": 0.01}


def test_data_uri_per_benchmark():
    single = EvalRequest(["vsibench"], data="s3://bench/vsi")
    assert benchmark_uri(single, "vsibench") == "s3://bench/vsi"
    several = EvalRequest(
        ["vsibench", "mmvu"], data="/data/bench/", data_by_benchmark={"MMVU": "/elsewhere/mmvu"}
    )
    assert benchmark_uri(several, "vsibench") == "/data/bench/vsibench"
    assert benchmark_uri(several, "mmvu") == "/elsewhere/mmvu"
    with pytest.raises(ConfigError, match="no data for benchmark videomme"):
        benchmark_uri(EvalRequest(["vsibench", "videomme"], data_by_benchmark={"vsibench": "x"}), "videomme")


def test_output_folder_refuses_other_settings_unless_fresh(tmp_path):
    check_output(tmp_path, SETTINGS, ["vsibench"], fresh=False)
    check_output(tmp_path, SETTINGS, ["vsibench"], fresh=False)  # same settings: resume
    (tmp_path / "vsibench.jsonl").write_text('{"id": "1", "status": "ok"}\n')
    with pytest.raises(ConfigError, match=r"other settings \(frames: 32 -> 16\).*--fresh"):
        check_output(tmp_path, {**SETTINGS, "frames": 16}, ["vsibench"], fresh=False)
    check_output(tmp_path, {**SETTINGS, "frames": 16}, ["vsibench"], fresh=True)
    assert not (tmp_path / "vsibench.jsonl").exists()
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["frames"] == 16


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    assert (
        main(["eval", "-b", "nope", "-d", str(tmp_path), "-e", "http://127.0.0.1:9", "-o", str(tmp_path)])
        == 2
    )
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert main(["eval", "-b", "mmvu", "-d", str(tmp_path), "-o", str(tmp_path)]) == 2
    assert "exactly one of --model DIR and --endpoint URL" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "-b",
                "mmvu",
                "-d",
                "x",
                "-o",
                str(tmp_path),
                "-e",
                "http://127.0.0.1:9",
                "eval.min_pixels=9",
                "eval.max_pixels=8",
            ]
        )
        == 2
    )
    assert "min_pixels (9) > max_pixels (8)" in capsys.readouterr().err


def test_cli_lists_benchmarks(capsys):
    assert main(["eval", "--list-benchmarks"]) == 0
    listing = capsys.readouterr().out
    assert "vsibench" in listing and "VideoMME (no subs)" in listing and "synthetic" in listing
