"""`videop2r eval`: the paper's benchmarks (method §6) against a checkpoint or running endpoints."""

from __future__ import annotations

import argparse
import sys

from videop2r.cli.config import add_config_arguments


def _split_data(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """`--data URI` and `--data NAME=URI` values -> (shared URI, per-benchmark URIs)."""
    from videop2r.config import ConfigError
    from videop2r.eval import get_benchmark

    shared: str | None = None
    named: dict[str, str] = {}
    for value in values:
        name, sep, uri = value.partition("=")
        if sep and "/" not in name and ":" not in name:
            try:
                named[get_benchmark(name).name] = uri
                continue
            except KeyError as exc:
                raise ConfigError(f"config error: --data {value}: {exc.args[0]}") from None
        if shared is not None:
            raise ConfigError("config error: --data: give one shared URI, the others as NAME=URI")
        shared = value
    return shared, named


def _list() -> int:
    from videop2r.eval import benchmark_names, get_benchmark

    for name in benchmark_names():
        adapter = get_benchmark(name)
        doc = (sys.modules[type(adapter).__module__].__doc__ or "").strip().splitlines()
        print(f"{name:12s} {adapter.title:20s} {doc[0] if doc else ''}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from videop2r.config import ConfigError, load_config
    from videop2r.eval import EndpointDown, EvalRequest, get_benchmark, run_eval

    if args.list_benchmarks:
        return _list()
    quiet_request_logs()
    overrides = list(args.overrides)
    for flag, key in (
        (args.limit, "eval.limit"),
        (args.concurrency, "eval.concurrency"),
        (args.sufficiency_endpoint, "eval.sufficiency_url"),
        (args.transport, "eval.transport"),
    ):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    config = load_config(args.config, overrides)
    if not args.benchmark or not args.output or not args.data:
        raise ConfigError("config error: --benchmark, --data and --output are required")
    names = [name.strip() for name in args.benchmark.split(",") if name.strip()]
    try:
        names = [get_benchmark(name).name for name in names]
    except KeyError as exc:
        raise ConfigError(f"config error: --benchmark: {exc.args[0]}") from None
    shared, named = _split_data(args.data)
    endpoints = [url.strip() for value in args.endpoint or [] for url in value.split(",") if url.strip()]
    if not endpoints and not args.model:
        # in the cluster: the rollout Service of the chart's config
        endpoints = list(config.rollout.endpoints)
    request = EvalRequest(
        benchmarks=names,
        data=shared,
        data_by_benchmark=named,
        model=args.model,
        endpoints=endpoints,
        output=Path(args.output),
        label=args.name,
        fresh=args.fresh,
        progress=config.metrics.progress and not args.no_progress,
        blind=args.blind,
    )
    if request.model:
        # SIGTERM (a pod stopping, `kill`) unwinds like Ctrl-C, so the run's own rollout server is stopped too
        import signal

        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        outcome = run_eval(request, config)
    except EndpointDown:
        return 1
    from videop2r.eval.summary import table1

    print(table1(outcome.label, outcome.reports))
    if args.blind:
        from videop2r.eval.blind import video_ablation

        print(video_ablation(outcome.reports, outcome.blind_reports))
    print(f"summary: {outcome.summary}")
    return 1 if any(report.error for report in outcome.reports) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on VSI-Bench, VideoMMMU, MMVU, VCR-Bench, MVBench, TempCompass, VideoMME (+ synthetic)",
        description="Run benchmarks from their own released annotation files (local folder or s3://) through "
        "the rollout client or an OpenAI-compatible endpoint, at the paper's inference settings (eval.* config). "
        "Writes <output>/<benchmark>.jsonl per item (a rerun resumes: finished items are not redone) and "
        "<output>/summary.md in the format of the paper's Table 1, with diagnostics and every failed item.",
    )
    parser.add_argument("--benchmark", "-b", help="NAME[,NAME...] (see --list-benchmarks)")
    parser.add_argument(
        "--data",
        "-d",
        action="append",
        help="benchmark folder (URI); with several benchmarks a root holding one folder per "
        "benchmark name, or NAME=URI per benchmark (repeatable)",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--model", "-m", help="checkpoint directory or s3:// URI, served by a local embedded server"
    )
    model.add_argument(
        "--endpoint",
        "-e",
        action="append",
        help="running server(s): SGLang API (transport generate) or OpenAI-compatible (chat); "
        "comma-separated or repeated (default: rollout.endpoints of the config)",
    )
    parser.add_argument("--output", "-o", help="output directory (per-item JSONL, summary.md, summary.json)")
    parser.add_argument("--name", help="model label in the summary (default: the checkpoint path)")
    parser.add_argument("--limit", type=int, default=None, help="first N items per benchmark (eval.limit)")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (eval.concurrency)")
    parser.add_argument(
        "--transport", choices=("auto", "generate", "chat"), default=None, help="eval.transport"
    )
    parser.add_argument(
        "--sufficiency-endpoint",
        default=None,
        help="OpenAI-compatible text endpoint for the perception-sufficiency diagnostic",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="discard earlier results in --output instead of resuming"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--blind", action="store_true",
        help="run every benchmark a second time with its frames blanked (results in <output>/blind/); "
        "the summary shows accuracy with and without the video",
    )
    parser.add_argument("--list-benchmarks", action="store_true", help="list the benchmarks and exit")
    add_config_arguments(parser)
    parser.set_defaults(handler=_eval)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def quiet_request_logs() -> None:
    """One INFO line per HTTP request drowns the progress bar; keep httpx at WARNING unless -v."""
    import logging

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
