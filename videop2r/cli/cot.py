"""`videop2r cot generate|verify|judge|run`: the three-step process-aware CoT data pipeline (method §3)."""

from __future__ import annotations

import argparse

from videop2r.cli.config import add_config_arguments

STEP_HELP = {
    "generate": "step 1: the teacher VLM writes a method §1 output per record",
    "verify": "step 2: drop outputs that break the template or score Acc_t < cot.min_accuracy",
    "judge": "step 3: keep outputs whose observation alone suffices (judge says Yes); writes cot.jsonl",
    "run": "all three steps, streamed per record; writes cot.jsonl and cot.counts.json",
}


def _parse_shard(text: str):  # noqa: ANN202 - Shard
    from videop2r.config import ConfigError
    from videop2r.cot import Shard

    index, sep, count = text.partition("/")
    try:
        return Shard(int(index), int(count)) if sep else Shard(int(index), 1)
    except ValueError:
        raise ConfigError(f"config error: --shard {text!r}: expected INDEX/COUNT, e.g. 0/4") from None


def _handler(step: str):  # noqa: ANN202 - the argparse handler of one subcommand
    def handle(args: argparse.Namespace) -> int:
        import asyncio
        import json
        from pathlib import Path

        from videop2r.config import load_config
        from videop2r.cot import STEPS, CoTRequest, run_pipeline

        from videop2r.cli.eval import quiet_request_logs

        quiet_request_logs()
        overrides = list(args.overrides)
        for value, key in (
            (args.teacher, "cot.teacher_url"),
            (args.teacher_model, "cot.teacher_model"),
            (args.judge, "reward.judge"),
            (args.judge_url, "reward.judge_url"),
            (args.judge_model, "reward.judge_model"),
            (args.concurrency, "cot.concurrency"),
        ):
            if value is not None:
                overrides.append(f"{key}={value}")
        if args.judge_endpoint:
            overrides.append(f"reward.judge_endpoints={json.dumps(args.judge_endpoint)}")
        config = load_config(args.config, overrides)
        request = CoTRequest(
            records=args.records,
            output=Path(args.output),
            media_root=args.media_root,
            shard=_parse_shard(args.shard),
            progress=config.metrics.progress and not args.no_progress,
        )
        steps = STEPS if step == "run" else (step,)
        counts = asyncio.run(run_pipeline(request, config, steps))
        print(json.dumps(counts, indent=1))
        return 0

    return handle


def register(subparsers: argparse._SubParsersAction) -> None:
    cot = subparsers.add_parser(
        "cot",
        help="build process-aware CoT data: generate (teacher) → verify (template, Acc_t) → judge (sufficiency)",
        description="method §3 over Video-R1-layout records. Resumable (per-step ledgers in --output; a rerun skips "
        "finished records), sharded by record id (--shard I/N), bounded concurrency, retries. The kept records "
        "(cot.jsonl, VideoP2R layout) are ready for `videop2r data pack` and `videop2r sft`.",
    )
    area = cot.add_subparsers(dest="cot_command", required=True, metavar="STEP")
    for step, help_text in STEP_HELP.items():
        parser = area.add_parser(step, help=help_text, description=help_text)
        parser.add_argument(
            "--records", "-r", required=True, help="Video-R1 records (.json/.jsonl; path or s3:// URI)"
        )
        parser.add_argument(
            "--output", "-o", required=True, help="output directory (ledgers, cot.jsonl, counts)"
        )
        parser.add_argument(
            "--media-root",
            default=None,
            help="folder the records' `path` is relative to (default: the records file's folder)",
        )
        parser.add_argument(
            "--shard", default="0/1", help="this worker's shard INDEX/COUNT of the records (by id)"
        )
        parser.add_argument(
            "--concurrency", type=int, default=None, help="records in flight (cot.concurrency)"
        )
        if step in ("generate", "run"):
            parser.add_argument(
                "--teacher", default=None, help="teacher OpenAI-compatible endpoint (cot.teacher_url)"
            )
            parser.add_argument("--teacher-model", default=None, help="model name sent to the teacher")
        if step in ("judge", "run"):
            parser.add_argument(
                "--judge-endpoint",
                action="append",
                default=None,
                help="reward-judge service URL (repeatable); without one the judge runs in-process",
            )
            parser.add_argument(
                "--judge",
                choices=("openai", "evidence", "embedding"),
                default=None,
                help="in-process judge kind (reward.judge)",
            )
            parser.add_argument(
                "--judge-url", default=None, help="OpenAI-compatible judge LLM for --judge openai"
            )
            parser.add_argument("--judge-model", default=None, help="model name sent to the judge LLM")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_config_arguments(parser)
        parser.set_defaults(
            handler=_handler(step),
            teacher=None,
            teacher_model=None,
            judge_endpoint=None,
            judge=None,
            judge_url=None,
            judge_model=None,
        )
