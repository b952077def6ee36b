"""Run a reward service app under uvicorn (one process; scoring parallelism is the process pool)."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI


def run_app(app: FastAPI, host: str, port: int, *, access_log: bool = False) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per judge call is noise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        access_log=access_log,
        timeout_graceful_shutdown=10,
        log_config=None,  # keep the CLI's logging format
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
