"""`videop2r serve rollout|reward-accuracy|reward-judge`: the separately deployed services."""

from __future__ import annotations

import argparse


def _register_rollout(area: argparse._SubParsersAction) -> None:
    """`videop2r serve rollout --model DIR --port P`: the embedded SGLang-API rollout server."""

    def serve_rollout(args: argparse.Namespace) -> int:
        from services.rollout.main import serve

        return serve(args)

    from services.rollout.main import add_arguments
    from videop2r.cli.config import add_config_arguments

    parser = area.add_parser(
        "rollout", help="rollout server: SGLang's /generate, /update_weights_from_disk, ... on transformers"
    )
    add_arguments(parser)
    add_config_arguments(parser)
    parser.set_defaults(handler=serve_rollout)


def _register_reward_accuracy(area: argparse._SubParsersAction) -> None:
    """`videop2r serve reward-accuracy --port P`: POST /v1/score (format, Acc_t, length per process)."""
    from videop2r.cli.config import add_config_arguments

    def serve_reward_accuracy(args: argparse.Namespace) -> int:
        from services.reward.accuracy_service import create_accuracy_app
        from services.reward.runner import run_app
        from videop2r.config import load_config

        config = load_config(args.config, args.overrides)
        app = create_accuracy_app(config, workers=args.workers or None)
        return run_app(app, args.host, args.port, access_log=args.access_log, server=config.server)

    parser = area.add_parser("reward-accuracy", help="reward-accuracy service: POST /v1/score")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=0, help="scoring processes (0 = reward.score_workers or the CPUs)")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    add_config_arguments(parser)
    parser.set_defaults(handler=serve_reward_accuracy)


def _register_reward_judge(area: argparse._SubParsersAction) -> None:
    """`videop2r serve reward-judge --port P --judge KIND`: POST /v1/judge (perception sufficiency)."""
    from videop2r.cli.config import add_config_arguments

    def serve_reward_judge(args: argparse.Namespace) -> int:
        from services.reward.judge_service import create_judge_app
        from services.reward.runner import run_app
        from videop2r.config import load_config

        overrides = list(args.overrides)
        if args.judge:
            overrides.append(f"reward.judge={args.judge}")
        if args.judge_url:
            overrides.append(f"reward.judge_url={args.judge_url}")
        config = load_config(args.config, overrides)
        app = create_judge_app(config)
        return run_app(app, args.host, args.port, access_log=args.access_log, server=config.server)

    parser = area.add_parser("reward-judge", help="perception-judge service: POST /v1/judge")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--judge", choices=("openai", "evidence", "embedding"), default=None,
                        help="judge kind (default: reward.judge)")
    parser.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for --judge openai")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    add_config_arguments(parser)
    parser.set_defaults(handler=serve_reward_judge)


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run a service: rollout, reward-accuracy, reward-judge")
    area = serve.add_subparsers(dest="serve_command", required=True, metavar="SERVICE")
    _register_rollout(area)
    _register_reward_accuracy(area)
    _register_reward_judge(area)
