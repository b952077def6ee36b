"""`videop2r config show|check` and `videop2r plan`: the resolved tree, its problems, the learner's memory plan."""

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
    check = area.add_parser("check", help="validate a config for SFT and PA-GRPO (every field at fault)")
    add_config_arguments(check)
    _gpu_arguments(check)
    check.add_argument("--check-paths", action="store_true", help="local paths must exist")
    check.set_defaults(handler=_check)
    register_plan(subparsers)


def _check(args: argparse.Namespace) -> int:
    from videop2r.train.preflight import config_problems

    config = load_config(args.config, args.overrides)
    problems = config_problems(config, check_paths=args.check_paths, gpus_per_node=args.gpus_per_node,
                               gpu_memory_gb=args.gpu_memory_gb)
    for line in problems:
        print(line)
    if not problems:
        print(f"config ok: {args.config or '<defaults>'} (sft and pa_grpo)")
    return 1 if problems else 0


def _plan(args: argparse.Namespace) -> int:
    from videop2r.train.preflight import plan_table, size_learner

    sizing = size_learner(load_config(args.config, args.overrides), args.gpus_per_node, args.gpu_memory_gb,
                          args.model_config)
    print("\n".join(plan_table(sizing)))
    return 0 if sizing.plan.fits else 1


def _gpu_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory per GPU (default 80)")


def register_plan(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="the learner's memory plan per GPU and per host")
    add_config_arguments(plan)
    _gpu_arguments(plan)
    plan.add_argument("--model-config", default=None, help="checkpoint dir whose config.json sizes the model")
    plan.set_defaults(handler=_plan)
