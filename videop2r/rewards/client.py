"""The trainer's client for the reward services: whole batches, spread over every endpoint at once.

`await client.score(items)` and `await client.judge(items)` take a group or a whole batch; the
items are cut into contiguous chunks (at most one per endpoint, at least `min_chunk` items each)
that are sent concurrently. A chunk whose endpoint fails (connection refused, timeout, 5xx, 429)
is sent again to the next endpoint after a short backoff; a failing endpoint is skipped for
`cooldown_s`. A 4xx is the caller's bug and raises `RewardRequestError` at once. When every
attempt fails, `RewardServiceError` is raised: silently zero rewards would corrupt training.

With no endpoints configured the same calls run in-process (the embedded default): scoring with
the rewards library in a thread, judging with a local `JudgePipeline`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

from videop2r.metrics import metric
from videop2r.rewards.judges.schema import JudgeItem, JudgeResult

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from videop2r.config import VideoP2RConfig
    from videop2r.rewards.judges.pipeline import JudgePipeline

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 425, 429, 502, 503, 504}


class RewardServiceError(RuntimeError):
    """No endpoint of a reward service could answer a chunk after every attempt."""


class RewardRequestError(ValueError):
    """A reward service rejected the request itself (4xx): bad items or a wrong token."""


class RewardClient:
    """Async client for reward-accuracy (`score`) and reward-judge (`judge`); use as `async with`."""

    def __init__(
        self,
        accuracy_endpoints: Sequence[str] = (),
        judge_endpoints: Sequence[str] = (),
        *,
        token: str | None = None,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 3.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        cooldown_s: float = 5.0,
        min_chunk: int = 8,
        local_config: "VideoP2RConfig | None" = None,
        registry: "CollectorRegistry | None" = None,
    ) -> None:
        self.accuracy_endpoints = [url.rstrip("/") for url in accuracy_endpoints]
        self.judge_endpoints = [url.rstrip("/") for url in judge_endpoints]
        self.retries = retries
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self.min_chunk = max(1, min_chunk)
        self._local_config = local_config
        self._local_judge: JudgePipeline | None = None
        self._local_settings: Any = None
        self._registry = registry
        self._failures = metric("videop2r_endpoint_failures_total", registry)
        self._down_until: dict[str, float] = {}
        self._rotation = 0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    @classmethod
    def from_config(
        cls, config: "VideoP2RConfig", registry: "CollectorRegistry | None" = None
    ) -> "RewardClient":
        """Endpoints, timeouts and the token (env var named by `reward.auth_token_env`) of the config;
        with no endpoints, the config's own settings score and judge in-process."""
        reward = config.reward
        return cls(
            reward.accuracy_endpoints,
            reward.judge_endpoints,
            token=os.environ.get(reward.auth_token_env) or None,
            timeout_s=reward.request_timeout_s,
            retries=reward.request_retries,
            local_config=config,
            registry=registry,
        )

    async def __aenter__(self) -> "RewardClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._local_judge is not None:
            await self._local_judge.close()
            self._local_judge = None

    # -- public calls -------------------------------------------------------------------------

    async def score(self, items: Sequence[BaseModel | Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Output lines of `videop2r rewards score` (`{"id", "perception", "reasoning"}`), in order."""
        if not items:
            return []
        if not self.accuracy_endpoints:
            return await asyncio.to_thread(self._score_locally, items)
        payload = [_as_json(item) for item in items]
        return await self._fan_out("reward-accuracy", self.accuracy_endpoints, "/v1/score", payload)

    async def judge(self, items: Sequence[JudgeItem | Mapping[str, Any]]) -> list[JudgeResult]:
        """One perception verdict per item, in order."""
        if not items:
            return []
        if not self.judge_endpoints:
            pipeline = await self._local_pipeline()
            return await pipeline.judge_batch([JudgeItem.model_validate(item) for item in items])
        payload = [_as_json(item) for item in items]
        lines = await self._fan_out("reward-judge", self.judge_endpoints, "/v1/judge", payload)
        return [JudgeResult.model_validate(line) for line in lines]

    # -- in-process fallback --------------------------------------------------------------------

    def _require_local_config(self, what: str) -> "VideoP2RConfig":
        if self._local_config is None:
            raise RewardServiceError(f"no {what} endpoints and no local config to run in-process")
        return self._local_config

    def _score_locally(self, items: Sequence[BaseModel | Mapping[str, Any]]) -> list[dict[str, Any]]:
        from videop2r.rewards import ScoreRequest, ScoringSettings, score_response

        if self._local_settings is None:
            self._local_settings = ScoringSettings.from_config(self._require_local_config("reward-accuracy"))
        settings = self._local_settings
        return [score_response(ScoreRequest.model_validate(_as_json(item)), settings) for item in items]

    async def _local_pipeline(self) -> "JudgePipeline":
        if self._local_judge is None:
            from videop2r.rewards.judges.pipeline import JudgePipeline

            config = self._require_local_config("reward-judge")
            self._local_judge = JudgePipeline.from_config(config.reward, registry=self._registry)
            await self._local_judge.start()
        return self._local_judge

    # -- fan-out with failover -------------------------------------------------------------------

    def _chunks(self, payload: list[Any], endpoints: list[str]) -> list[list[Any]]:
        count = max(1, min(len(endpoints), math.ceil(len(payload) / self.min_chunk)))
        size = math.ceil(len(payload) / count)
        return [payload[start:start + size] for start in range(0, len(payload), size)]

    def _endpoint_order(self, endpoints: list[str], first: int) -> list[str]:
        """Endpoints starting at `first`, the ones in cooldown moved to the back."""
        rotated = endpoints[first % len(endpoints):] + endpoints[:first % len(endpoints)]
        now = time.monotonic()
        return sorted(rotated, key=lambda url: self._down_until.get(url, 0.0) > now)

    async def _fan_out(self, service: str, endpoints: list[str], path: str, payload: list[Any]) -> list[Any]:
        chunks = self._chunks(payload, endpoints)
        first = self._rotation
        self._rotation += len(chunks)
        parts = await asyncio.gather(*(
            self._send_chunk(service, self._endpoint_order(endpoints, first + index), path, chunk)
            for index, chunk in enumerate(chunks)
        ))
        return [line for part in parts for line in part]

    async def _send_chunk(self, service: str, order: list[str], path: str, chunk: list[Any]) -> list[Any]:
        last_error = ""
        for attempt in range(self.retries + 1):
            url = order[attempt % len(order)]
            try:
                response = await self._http.post(url + path, json={"items": chunk})
            except httpx.HTTPError as exc:
                last_error = f"{url}: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    results = _results(response, len(chunk))
                    if results is not None:
                        self._down_until.pop(url, None)
                        return results
                    last_error = f"{url}: answered {len(chunk)} items with a malformed body"
                elif 400 <= status < 500 and status not in _RETRYABLE_STATUS:
                    raise RewardRequestError(f"{service} at {url} rejected the request: HTTP {status}: "
                                             f"{_error_message(response)}")
                else:
                    last_error = f"{url}: HTTP {status}: {_error_message(response)}"
            self._failures.labels(service=service, endpoint=url).inc()
            self._down_until[url] = time.monotonic() + self.cooldown_s
            log.warning("%s: attempt %d of %d failed: %s", service, attempt + 1, self.retries + 1, last_error)
            if attempt < self.retries:
                await asyncio.sleep(self.backoff_s * 2 ** attempt * random.uniform(0.5, 1.0))
        raise RewardServiceError(f"{service}: {len(chunk)} items failed after {self.retries + 1} attempts; "
                                 f"last error: {last_error}")


def _as_json(item: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    return dict(item)


def _results(response: httpx.Response, expected: int) -> list[Any] | None:
    try:
        results = response.json()["results"]
    except (ValueError, KeyError, TypeError):
        return None
    return results if isinstance(results, list) and len(results) == expected else None


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text[:200]))
    except (ValueError, AttributeError):
        return response.text[:200]
