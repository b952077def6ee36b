"""The rollout server's launch arguments judged by SGLang 0.5.23's own parser
(`ServerArgs.add_cli_args`, sglang/srt/server_args.py and sglang/srt/arg_groups/): every SGLang name
the embedded server takes (so the chart's command runs unchanged on a CPU) is one SGLang accepts,
and a flag SGLang refuses the embedded server refuses too."""

from __future__ import annotations

import argparse

import pytest

from services.rollout.main import GPU_ONLY_FLAGS, GPU_ONLY_VALUE_ARGS, SGLANG_NAMED, add_arguments
from tests.rollout import sglang_side


@pytest.fixture(scope="module")
def sglang_parser() -> argparse.ArgumentParser:
    why = sglang_side.install()
    if why is not None:
        pytest.skip(why)
    sglang_side.activate()
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    return parser


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_every_sglang_name_the_embedded_server_takes_is_one_sglang_takes(sglang_parser) -> None:
    ours = argparse.ArgumentParser()
    add_arguments(ours)
    names = (*SGLANG_NAMED, *GPU_ONLY_VALUE_ARGS, *GPU_ONLY_FLAGS)
    assert set(names) <= _options(ours)
    assert sorted(set(names) - _options(sglang_parser)) == []


def test_an_unknown_flag_is_refused_by_both(sglang_parser) -> None:
    ours = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(ours)
    args = ["--model-path", "/models/model", "--chunked-prefill-size", "8192", "--cuda-graph-max-bs", "8"]
    assert sglang_parser.parse_args(args[:4]).chunked_prefill_size == 8192  # without the unknown flag: taken
    assert ours.parse_args(args[:4]).model == "/models/model"
    with pytest.raises(SystemExit):  # unrecognized arguments: argparse exits 2 in both
        sglang_parser.parse_args(args)
    with pytest.raises(SystemExit):
        ours.parse_args(args)
