"""`videop2r data synth|pack|inspect`: the synthetic set, tar shards on the object store, summaries."""

from __future__ import annotations

import argparse


def _register_synth(area: argparse._SubParsersAction) -> None:
    """Owned by the synthetic-data module (videop2r/data/synth.py)."""


def _register_pack(area: argparse._SubParsersAction) -> None:
    """Owned by the shard module (videop2r/data/shards.py)."""


def _register_inspect(area: argparse._SubParsersAction) -> None:
    """Owned by the shard module (videop2r/data/shards.py / inspect)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="video QA data: synthesize, pack into shards, inspect")
    area = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    _register_synth(area)
    _register_pack(area)
    _register_inspect(area)
