"""Async client for SGLang's native HTTP API over N rollout endpoints.

Matched against SGLang 0.5.x (sgl-project/sglang, ``python/sglang/version.py`` 0.5.3rc2 in the
snapshot read; ``srt/entrypoints/http_server.py`` routes, ``srt/managers/io_struct.py``
``GenerateReqInput`` / ``UpdateWeightFromDiskReqInput``, ``srt/sampling/sampling_params.py``, the
``meta_info`` built in ``tokenizer_manager.py``; docs.sglang.io "SGLang Native APIs"). The same
code talks to SGLang pods and to the embedded server (``videop2r serve rollout``).

- Requests: ``POST /generate`` with ``input_ids`` (or ``text``), ``video_data``/``image_data``,
  ``sampling_params`` {max_new_tokens, temperature, top_p, n, stop, ...}, ``return_logprob``.
  ``n > 1`` answers with a list. Each result becomes a ``Completion`` with the sampled ids, their
  log-probs (``meta_info.output_token_logprobs``: SGLang's default is ``log_softmax(logits / T)``
  before top-p/top-k), the finish reason and ``meta_info.weight_version``.
- Request format: SGLang 0.5.23's only (``videop2r.rollout.payload``): ``text`` with the Qwen2.5-VL
  placeholder, ``video_data`` list-wrapped, media as a lossless ``data:`` URI of the learner's exact
  frames (``videop2r.rollout.media``) or an http(s) URL; G samples as a batch with one seed each.
  Error bodies of all four SGLang shapes are read by ``videop2r.http.errors.error_message``.
- Endpoints, choice, failover and retries: ``videop2r.http.pool.EndpointPool`` (least-loaded or
  round-robin; a connection error, a timeout, a retryable status or a garbled answer cools the
  endpoint down and the request goes to another, up to ``max_retries`` times; a 4xx raises
  ``RolloutRequestError`` at once). Configured URLs naming a headless Service count as one
  endpoint per ready pod, resolved again every 30 s and soon after a failure: a rescheduled pod
  joins at its new address, out of rotation until it is re-synced to the current weights.
- Weights: ``update_weights(path, version)`` posts ``/update_weights_from_disk`` to every
  endpoint and checks ``/get_model_info``; an endpoint that failed is *stale* (out of rotation:
  no traffic) until a background re-sync succeeds; with ``check_version`` a result carrying
  another weight version is refused and retried elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from videop2r.http.errors import (
    EndpointError,
    EndpointUnavailable,
    Failure,
    ProtocolError,
    RequestRefused,
    error_message,
)
from videop2r.http.pool import Endpoint, EndpointPool
from videop2r.http.resolution import EndpointSet
from videop2r.http.retry import RetryPolicy
from videop2r.metrics import metric

log = logging.getLogger(__name__)


class RolloutError(EndpointError):
    """Base of rollout client errors."""


class RolloutRequestError(RequestRefused, RolloutError):
    """The endpoint refused the request as malformed (4xx); retrying elsewhere would not help."""


class RolloutUnavailable(EndpointUnavailable, RolloutError):
    """Every attempt failed; `errors` lists (endpoint, reason) per attempt."""


class WeightSyncError(RolloutError):
    """A weight update that did not reach the endpoints it had to; `results` has every endpoint."""

    def __init__(self, message: str, results: list["EndpointUpdate"]) -> None:
        super().__init__(message)
        self.results = results


@dataclass(frozen=True)
class Completion:
    """One sampled continuation (one element of SGLang's /generate answer)."""

    text: str
    output_ids: list[int]
    # log-prob of each output token, same length as output_ids (empty if not requested)
    output_logprobs: list[float]
    finish_reason: str  # "stop" | "length" | "abort" | ...
    matched_stop: int | str | None
    prompt_tokens: int
    weight_version: str | None
    endpoint: str
    meta_info: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_sglang(cls, item: Any, endpoint: str) -> "Completion":
        if not isinstance(item, dict) or not isinstance(item.get("meta_info"), dict):
            raise ValueError("result without meta_info")
        meta = item["meta_info"]
        output_ids = item.get("output_ids")
        if not isinstance(output_ids, list):
            raise ValueError("result without output_ids")
        logprobs_raw = meta.get("output_token_logprobs") or []
        logprobs = [float(entry[0]) for entry in logprobs_raw]
        if logprobs and len(logprobs) != len(output_ids):
            raise ValueError(f"{len(logprobs)} log-probs for {len(output_ids)} output tokens")
        reason = meta.get("finish_reason") or {}
        if isinstance(reason, str):
            reason = {"type": reason}
        version = meta.get("weight_version")
        return cls(
            text=str(item.get("text", "")),
            output_ids=[int(token) for token in output_ids],
            output_logprobs=logprobs,
            finish_reason=str(reason.get("type", "unknown")),
            matched_stop=reason.get("matched"),
            prompt_tokens=int(meta.get("prompt_tokens", 0)),
            weight_version=None if version is None else str(version),
            endpoint=endpoint,
            meta_info=meta,
        )


@dataclass(frozen=True)
class EndpointUpdate:
    endpoint: str
    success: bool
    message: str
    weight_version: str | None = None


@dataclass(eq=False)
class _Endpoint(Endpoint):
    """A pool endpoint with its weight sync state; out of rotation = stale."""

    weight_version: str | None = None
    resync: asyncio.Task | None = None


class RolloutClient:
    """Async SGLang-API client over `endpoints` (see the module docstring). Use ``async with``."""

    def __init__(self, endpoints: list[str], *, balance: str = "least_loaded", timeout_s: float = 600.0,
                 connect_timeout_s: float = 5.0, max_retries: int = 3, retry_backoff_s: float = 0.5,
                 check_version: bool = True, transport: httpx.AsyncBaseTransport | None = None,
                 registry: Any = None, resolver: EndpointSet | None = None) -> None:
        if not endpoints:
            raise ValueError("RolloutClient needs at least one endpoint")
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.check_version = check_version
        self.expected_version: str | None = None
        self.weights_path: str | None = None
        policy = RetryPolicy(max_retries=max_retries, backoff_s=retry_backoff_s, cooldown_s=retry_backoff_s)
        # a pod that joins after a weight sync starts out of rotation: the re-sync gives it the weights
        self.pool = EndpointPool(
            endpoints, service="rollout", policy=policy, balance=balance, timeout=self.timeout, transport=transport,
            resolver=resolver, make_endpoint=lambda url: _Endpoint(url, out_of_rotation=self.weights_path is not None),
            on_dropped=self._cancel_resync, rejoin=self._await_resyncs,
            failures_metric=metric("videop2r_endpoint_failures_total", registry),
            refused=RolloutRequestError, unavailable=RolloutUnavailable,
        )

    @property
    def endpoints(self) -> list[_Endpoint]:
        return self.pool.endpoints  # type: ignore[return-value]

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> "RolloutClient":
        """From a ``RolloutConfig`` (endpoints, balance, timeouts, retries)."""
        kwargs.setdefault("check_version", config.check_weight_version)
        # a headless Service name resolves to every ready rollout pod: one endpoint each, kept current
        resolver = kwargs.pop("resolver", None) or EndpointSet(list(config.endpoints))
        return cls(resolver.current(), balance=config.balance, timeout_s=config.timeout_s,
                   connect_timeout_s=config.connect_timeout_s, max_retries=config.max_retries,
                   retry_backoff_s=config.retry_backoff_s, resolver=resolver, **kwargs)

    async def __aenter__(self) -> "RolloutClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            self._cancel_resync(endpoint)
        await self.pool.aclose()

    # -- generation

    async def generate(self, payload: dict[str, Any]) -> list[Completion]:
        """POST /generate with an SGLang ``GenerateReqInput`` body (see ``generate_payload``);
        one ``Completion`` per sample, prompt-major."""

        def accept(data: Any, endpoint: _Endpoint) -> list[Completion]:
            items = data if isinstance(data, list) else [data]
            completions = [Completion.from_sglang(item, endpoint.url) for item in items]
            if self.check_version and self.expected_version is not None:
                for completion in completions:
                    if completion.weight_version != self.expected_version:
                        endpoint.out_of_rotation = True
                        raise ProtocolError(f"generated with weights {completion.weight_version!r}, "
                                         f"expected {self.expected_version!r}")
            return completions

        await self.pool.refresh()
        self._start_resyncs()  # pods that joined stale, stale ones whose cool-down has passed
        completions, _ = await self.pool.call("POST", "/generate", payload, accept=accept)
        return completions

    # -- health and info

    async def health(self, timeout_s: float = 5.0) -> dict[str, bool]:
        """GET /health on every endpoint: {url: healthy}."""
        await self.pool.refresh()
        return await self.pool.each("GET", "/health", timeout=timeout_s)

    async def wait_ready(self, timeout_s: float = 300.0, interval_s: float = 0.5) -> None:
        """Wait until every endpoint answers /health with 200."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.health()
            if all(status.values()):
                return
            if time.monotonic() > deadline:
                failures = [Failure(url, "not healthy", "status") for url, ok in status.items() if not ok]
                raise RolloutUnavailable(f"rollout endpoints not healthy after {timeout_s:g}s: "
                                         + ", ".join(f.endpoint for f in failures), failures)
            await asyncio.sleep(interval_s)

    async def model_info(self, endpoint: str) -> dict[str, Any]:
        response = await self.pool.http.get(endpoint.rstrip("/") + "/get_model_info")
        response.raise_for_status()
        return response.json()

    async def flush_cache(self) -> dict[str, bool]:
        return await self.pool.each("POST", "/flush_cache")

    # -- weight sync

    async def update_weights(self, path: str, version: str, *, require_all: bool = False,
                             load_format: str | None = None, attempts: int = 1) -> list[EndpointUpdate]:
        """Make every endpoint reload weights from `path` (a local directory on the pods) as `version`.

        An endpoint is tried up to `attempts` times (exponential backoff); one that still fails is
        stale (no traffic) and re-synced in the background. Raises ``WeightSyncError`` if none
        succeeded, or any failed with `require_all`."""
        await self.pool.refresh()  # every pod there is now gets the weights
        self.weights_path, self.expected_version = path, str(version)

        async def with_retries(endpoint: _Endpoint) -> EndpointUpdate:
            for attempt in range(max(attempts, 1)):
                if attempt:
                    await asyncio.sleep(self.pool.policy.backoff(attempt))
                    log.info("retrying the weight update of %s (attempt %d/%d)", endpoint.url, attempt + 1, attempts)
                result = await self._update_one(endpoint, load_format)
                if result.success:
                    break
            return result

        results = await asyncio.gather(*(with_retries(endpoint) for endpoint in self.endpoints))
        failed = [result for result in results if not result.success]
        if len(failed) == len(results) or (require_all and failed):
            detail = "; ".join(f"{result.endpoint}: {result.message}" for result in failed)
            raise WeightSyncError(f"weight update to version {version} failed on {len(failed)}/{len(results)} "
                                  f"endpoint(s): {detail}", list(results))
        return list(results)

    async def _update_one(self, endpoint: _Endpoint, load_format: str | None = None) -> EndpointUpdate:
        body: dict[str, Any] = {"model_path": self.weights_path, "weight_version": self.expected_version}
        if load_format:
            body["load_format"] = load_format
        http = self.pool.http
        try:
            response = await http.post(endpoint.url + "/update_weights_from_disk", json=body)
            if response.status_code != 200:
                raise RolloutError(f"HTTP {response.status_code}: {error_message(response)}")
            info = (await http.get(endpoint.url + "/get_model_info")).json()
            served = None if info.get("weight_version") is None else str(info.get("weight_version"))
            if served != self.expected_version:
                raise RolloutError(f"serves weight version {served!r} after the update")
        except (httpx.HTTPError, RolloutError, ValueError) as exc:
            endpoint.out_of_rotation = True
            self.pool.mark_failed(endpoint, f"weight update: {exc}")
            return EndpointUpdate(endpoint.url, False, str(exc))
        endpoint.out_of_rotation = False
        endpoint.weight_version = served
        self.pool.mark_ok(endpoint)
        return EndpointUpdate(endpoint.url, True, "ok", served)

    async def _await_resyncs(self) -> bool:
        """Wait (up to the request timeout) for the weight re-syncs under way; True if any ran."""
        self._start_resyncs()
        pending = [e.resync for e in self.endpoints if e.resync is not None and not e.resync.done()]
        if not pending:
            return False
        await asyncio.wait(pending, timeout=self.timeout.read)
        return True

    def _start_resyncs(self) -> None:
        """Background re-sync of stale endpoints whose cool-down has passed."""
        if self.weights_path is None:
            return
        now = time.monotonic()
        for endpoint in self.endpoints:
            busy = endpoint.resync is not None and not endpoint.resync.done()
            if endpoint.out_of_rotation and not busy and now >= endpoint.down_until:
                endpoint.resync = asyncio.get_running_loop().create_task(self._update_one(endpoint))

    @staticmethod
    def _cancel_resync(endpoint: Endpoint) -> None:
        resync = getattr(endpoint, "resync", None)
        if resync is not None:
            resync.cancel()

    @property
    def stale_endpoints(self) -> list[str]:
        return [endpoint.url for endpoint in self.endpoints if endpoint.out_of_rotation]

    @property
    def served_versions(self) -> dict[str, str | None]:
        """{url: the weight version the endpoint last reported (None before its first sync)}."""
        return {endpoint.url: endpoint.weight_version for endpoint in self.endpoints}


async def update_weights(endpoints: list[str], path: str, version: str, *, timeout_s: float = 600.0,
                         load_format: str | None = None) -> list[EndpointUpdate]:
    """Reload weights from `path` on every endpoint as `version`; raises ``WeightSyncError`` unless
    all of them serve `version` afterwards (the strict form; ``RolloutClient.update_weights`` is the
    lenient one a training loop uses, where a dead pod must not stop the run)."""
    async with RolloutClient(endpoints, timeout_s=timeout_s) as client:
        return await client.update_weights(path, version, require_all=True, load_format=load_format)
