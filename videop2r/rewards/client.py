"""The trainer's client for the reward services: whole batches, spread over every endpoint at once.

`await client.score(items)` and `await client.judge(items)` take a group or a whole batch; the
items are cut into contiguous chunks (at most one per endpoint, at least `min_chunk` items each)
that are sent concurrently, each to the least-loaded endpoint (`videop2r.http.pool.EndpointPool`,
one pool per service). A configured URL naming a headless Service (the chart's) counts as one
endpoint per ready pod behind it: the name is resolved again every `resolve_every_s` and soon
after a failure, so added pods share the load and replaced ones drop out. A chunk whose endpoint
fails (connection refused, timeout, 5xx, 429, a malformed body) is sent again to another endpoint
at once (with backoff when it goes back to one it tried); a failing endpoint is skipped for
`cooldown_s`, doubled with each failure in a row. A 4xx is the caller's bug and raises
`RewardRequestError` at once. When every attempt fails, `RewardServiceError` is raised: silently
zero rewards would corrupt training.

With no endpoints configured the same calls run in-process (the embedded default): scoring with
the rewards library in a thread, judging with a local `JudgePipeline`.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

from videop2r.http.errors import EndpointUnavailable, ProtocolError, RequestRefused
from videop2r.http.pool import Endpoint, EndpointPool
from videop2r.http.resolution import EndpointSet, Resolver
from videop2r.http.retry import RetryPolicy
from videop2r.metrics import metric
from videop2r.rewards.judges.schema import JudgeItem, JudgeResult

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from videop2r.config import VideoP2RConfig
    from videop2r.rewards.judges.pipeline import JudgePipeline

SERVICES = ("reward-accuracy", "reward-judge")


class RewardServiceError(EndpointUnavailable):
    """No endpoint of a reward service could answer a chunk after every attempt (or none is
    configured and there is no config to run in-process)."""


class RewardRequestError(RequestRefused, ValueError):
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
        resolve_every_s: float = 30.0,
        resolve: Resolver | None = None,
    ) -> None:
        self.accuracy_endpoints = [url.rstrip("/") for url in accuracy_endpoints]
        self.judge_endpoints = [url.rstrip("/") for url in judge_endpoints]
        self.min_chunk = max(1, min_chunk)
        self._local_config = local_config
        self._local_judge: JudgePipeline | None = None
        self._local_settings: Any = None
        self._registry = registry
        policy = RetryPolicy(max_retries=retries, backoff_s=backoff_s, cooldown_s=cooldown_s)
        failures = metric("videop2r_endpoint_failures_total", registry)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # one pool per service over the pods behind each configured URL, re-resolved when due
        self._pools = {
            service: EndpointPool(
                [], service=service, policy=policy, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                headers=headers, resolver=EndpointSet(urls, refresh_s=resolve_every_s, resolve=resolve),
                failures_metric=failures, refused=RewardRequestError, unavailable=RewardServiceError)
            for service, urls in zip(SERVICES, (self.accuracy_endpoints, self.judge_endpoints))
        }

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
        for pool in self._pools.values():
            await pool.aclose()
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
        return await self._fan_out("reward-accuracy", "/v1/score", payload)

    async def judge(self, items: Sequence[JudgeItem | Mapping[str, Any]]) -> list[JudgeResult]:
        """One perception verdict per item, in order."""
        if not items:
            return []
        if not self.judge_endpoints:
            pipeline = await self._local_pipeline()
            return await pipeline.judge_batch([JudgeItem.model_validate(item) for item in items])
        payload = [_as_json(item) for item in items]
        lines = await self._fan_out("reward-judge", "/v1/judge", payload)
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

    async def endpoints(self, service: str) -> list[str]:
        """The endpoints `service` ("reward-accuracy" or "reward-judge") is spread over now."""
        pool = self._pools[service]
        await pool.refresh()
        return pool.urls

    async def _fan_out(self, service: str, path: str, payload: list[Any]) -> list[Any]:
        chunks = self._chunks(payload, await self.endpoints(service))
        parts = await asyncio.gather(*(self._send_chunk(service, path, chunk) for chunk in chunks))
        return [line for part in parts for line in part]

    async def _send_chunk(self, service: str, path: str, chunk: list[Any]) -> list[Any]:
        def accept(data: Any, endpoint: Endpoint) -> list[Any]:
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ProtocolError(f"answered {len(chunk)} items with a malformed body")
            return results

        results, _ = await self._pools[service].call("POST", path, {"items": chunk}, accept=accept,
                                                     what=f"{len(chunk)} items")
        return results


def _as_json(item: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    return dict(item)
