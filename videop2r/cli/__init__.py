"""`videop2r` command line: one parser, subcommands grouped by area.

Each area lives in its own module `videop2r.cli.<area>` with a `register(subparsers)` function.
Area modules import heavy libraries (torch, transformers, ray) inside their handlers only, so
that `videop2r --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from videop2r.config import ConfigError

# Order is the order shown in --help.
AREAS = ("config", "data", "rewards", "model", "serve", "train", "eval", "cot", "k8s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videop2r",
        description="VideoP2R: process-aware SFT and PA-GRPO for video-language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        importlib.import_module(f"videop2r.cli.{area}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
