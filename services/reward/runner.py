"""Run a reward service app under uvicorn (one process; scoring parallelism is the process pool),
with the connection limits of the config's `server` section (services.limits)."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.limits import ServerLimits, uvicorn_settings


def run_app(app: FastAPI, host: str, port: int, *, access_log: bool = False, server: Any = None) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code. `server`: the config's `server`
    section (header/body timeouts, connection cap); None = `ServerLimits()` defaults."""
    limits = ServerLimits() if server is None else ServerLimits.from_config(server)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per judge call is noise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        access_log=access_log,
        timeout_graceful_shutdown=10,
        log_config=None,  # keep the CLI's logging format
        **uvicorn_settings(limits),
    )
    runner = uvicorn.Server(config)
    runner.run()
    return 0 if runner.started else 1
