"""What every process serves: HTTP connection limits (`server:`) and its /metrics endpoint (`metrics:`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from videop2r.config.section import Section


class ServerConfig(Section):
    """Connection limits of every HTTP server (rollout, reward-accuracy, reward-judge): services/limits.py."""

    # -- a request's headers must arrive within this (from its first byte), its body within body_timeout_s
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(60.0, gt=0)
    # -- idle time before a kept-alive connection is closed
    keep_alive_s: float = Field(5.0, gt=0)
    # -- open connections per server; more are answered 503 and closed
    max_connections: int = Field(256, ge=1)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    # -- largest /generate or chat body of the embedded rollout server (media travel as data: URIs)
    rollout_max_body_bytes: int = Field(256 * 1024 * 1024, ge=1024)


class MetricsConfig(Section):
    # -- Prometheus /metrics port of the process (0 = off)
    port: int = Field(0, ge=0, le=65535)
    # -- address the /metrics server binds (0.0.0.0 in a pod)
    host: str = "127.0.0.1"
    # -- tqdm progress bars on stderr
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _moved_to_loggers(cls, data: Any) -> Any:
        for key in ("jsonl", "tensorboard"):
            if isinstance(data, dict) and key in data:
                raise ValueError(f"metrics.{key} moved to trainer.loggers "
                                 f"(e.g. trainer.loggers=[console,jsonl,tensorboard])")
        return data
