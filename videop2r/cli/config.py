"""`videop2r config show`: print the resolved config tree."""

from __future__ import annotations

import argparse

from videop2r.config import dump_config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--config FILE` and `a.b.c=value` arguments every config-driven command takes."""
    parser.add_argument("--config", "-c", default=None, help="YAML config file (defaults if omitted)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides, e.g. trainer.lr=1e-5")


def _show(args: argparse.Namespace) -> int:
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="inspect the config tree")
    area = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    show = area.add_parser("show", help="print the resolved config (YAML + overrides)")
    add_config_arguments(show)
    show.set_defaults(handler=_show)
