"""`videop2r serve rollout|reward-accuracy|reward-judge`: the separately deployed services."""

from __future__ import annotations

import argparse


def _register_rollout(area: argparse._SubParsersAction) -> None:
    """Owned by services/rollout (embedded SGLang-API server)."""


def _register_reward_accuracy(area: argparse._SubParsersAction) -> None:
    """Owned by services/reward (accuracy service)."""


def _register_reward_judge(area: argparse._SubParsersAction) -> None:
    """Owned by services/reward (perception-judge service)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run a service: rollout, reward-accuracy, reward-judge")
    area = serve.add_subparsers(dest="serve_command", required=True, metavar="SERVICE")
    _register_rollout(area)
    _register_reward_accuracy(area)
    _register_reward_judge(area)
