"""`videop2r sft`, `videop2r train` and `videop2r demo`: the two training stages and the laptop demo."""

from __future__ import annotations

import argparse

from videop2r.cli.config import add_config_arguments


def _quiet_http_logs() -> None:
    """One line per HTTP call to the services would bury the progress bars."""
    import logging

    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run_stage(args: argparse.Namespace, run) -> int:  # noqa: ANN001 - run_sft | run_pa_grpo
    import sys

    from videop2r.config import load_config
    from videop2r.train.checkpoint import CheckpointError
    from videop2r.train.parity import ParityGateRefused
    from videop2r.train.weight_sync import WeightSyncFailed

    config = load_config(args.config, args.overrides)
    _quiet_http_logs()
    try:
        run(config, resume=args.resume)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ParityGateRefused, WeightSyncFailed) as exc:  # the rollout side cannot be trained on
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


def _sft(args: argparse.Namespace) -> int:
    from videop2r.train.sft import run_sft

    return _run_stage(args, run_sft)


def _train(args: argparse.Namespace) -> int:
    from videop2r.train.loop import run_pa_grpo

    return _run_stage(args, run_pa_grpo)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from videop2r.train.report import write_report

    if not Path(args.run_dir).is_dir():
        print(f"error: no run directory {args.run_dir}", flush=True)
        return 2
    print(write_report(args.run_dir, notes=args.note))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sft = subparsers.add_parser(
        "sft",
        help="stage 1: supervised fine-tuning on process-aware CoT records (FSDP2 learner)",
        description="Fine-tune on the records' <observation>/<think>/<answer> outputs, loss on assistant "
        "tokens only; evaluates before and after; checkpoints on the object store; writes the HF model "
        "to trainer.sft.output_path (the π_ref and start of PA-GRPO).",
    )
    add_config_arguments(sft)
    sft.add_argument("--resume", action="store_true", help="continue from the run's latest complete checkpoint")
    sft.set_defaults(handler=_sft)

    train = subparsers.add_parser(
        "train",
        help="stage 2: PA-GRPO (or GRPO / an ablation, by algorithm.adv_estimator) on a Ray driver",
        description="Rollouts through the rollout endpoints (or a local embedded server), rewards through the "
        "reward services (or in-process), per-process advantages, FSDP2 learner updates, weight sync, "
        "held-out evaluation, and step-N checkpoints. Connects to $RAY_ADDRESS or trainer.ray_address when "
        "set (also as a `ray job submit` entrypoint), else starts a local Ray.",
    )
    add_config_arguments(train)
    train.add_argument("--resume", action="store_true", help="continue from the run's latest complete checkpoint")
    train.set_defaults(handler=_train)

    report = subparsers.add_parser("report", help="rebuild runs/<name>/report.md and its plots")
    report.add_argument("run_dir", help="the run directory (e.g. runs/demo)")
    report.add_argument("--note", action="append", default=[], help="a line for the Notes section (repeatable)")
    report.set_defaults(handler=_report)
