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
- Video transport: for training the client sends the prompt as **input_ids** (expanded by
  ``videop2r.prompting.build_inputs``) plus the **exact frames** the learner uses
  (``videop2r.rollout.media.encode_frames``); the embedded server rebuilds the same pixel tensors,
  so learner and rollout see identical visual tokens. SGLang pods over HTTP accept media only as
  sources (path/URL/base64 file) and sample frames themselves; use ``text`` + a source string
  there (``RolloutConfig.video_transport = "source"``) — identical frames then hold only as far as
  SGLang's sampling matches qwen-vl-utils' (SGLang's exact ``processor_output`` form is Engine-only).
- Balancing: least-loaded (fewest requests in flight from this client, ties in rotation) or
  round-robin. Failures: a connection error, a timeout, a 5xx/429 or a garbled answer marks the
  endpoint down (exponential cool-down) and the request is retried on another endpoint, up to
  ``max_retries`` times; a 4xx is the caller's fault and raises ``RolloutRequestError`` at once.
- Weights: ``update_weights(path, version)`` posts ``/update_weights_from_disk`` to every
  endpoint and checks ``/get_model_info``; an endpoint that failed is *stale* and gets no
  traffic until a background re-sync succeeds; with ``check_version`` a result carrying another
  weight version is refused and retried elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from videop2r.metrics import metric

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MAX_COOLDOWN_S = 30.0


class RolloutError(RuntimeError):
    """Base of rollout client errors."""


class RolloutRequestError(RolloutError):
    """The endpoint refused the request as malformed (4xx); retrying elsewhere would not help."""

    def __init__(self, status: int, message: str, endpoint: str) -> None:
        super().__init__(f"{endpoint}: HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.endpoint = endpoint


class RolloutUnavailable(RolloutError):
    """Every attempt failed; `errors` lists (endpoint, reason) per attempt."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"{endpoint}: {reason}" for endpoint, reason in errors) or "no endpoints"
        super().__init__(f"rollout failed after {len(errors)} attempt(s): {detail}")
        self.errors = errors


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


@dataclass
class _Endpoint:
    url: str
    in_flight: int = 0
    failures: int = 0
    down_until: float = 0.0
    stale: bool = False
    weight_version: str | None = None
    resync: asyncio.Task | None = None

    def usable(self, now: float) -> bool:
        return not self.stale and now >= self.down_until


class RolloutClient:
    """Async SGLang-API client over `endpoints` (see the module docstring). Use ``async with``."""

    def __init__(self, endpoints: list[str], *, balance: str = "least_loaded", timeout_s: float = 600.0,
                 connect_timeout_s: float = 5.0, max_retries: int = 3, retry_backoff_s: float = 0.5,
                 check_version: bool = True, transport: httpx.AsyncBaseTransport | None = None,
                 registry: Any = None) -> None:
        if not endpoints:
            raise ValueError("RolloutClient needs at least one endpoint")
        if balance not in ("least_loaded", "round_robin"):
            raise ValueError(f"balance must be least_loaded or round_robin, got {balance!r}")
        self.endpoints = [_Endpoint(url.rstrip("/")) for url in endpoints]
        self.balance = balance
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.check_version = check_version
        self.expected_version: str | None = None
        self.weights_path: str | None = None
        self._rotation = itertools.count()
        self._http = httpx.AsyncClient(timeout=self.timeout, transport=transport,
                                       limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        self._failures = metric("videop2r_endpoint_failures_total", registry)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> "RolloutClient":
        """From a ``RolloutConfig`` (endpoints, balance, timeouts, retries)."""
        from videop2r.k8s.endpoints import expand_endpoints

        kwargs.setdefault("check_version", config.check_weight_version)
        # a headless Service name resolves to every ready rollout pod: one endpoint each
        return cls(expand_endpoints(list(config.endpoints)), balance=config.balance, timeout_s=config.timeout_s,
                   connect_timeout_s=config.connect_timeout_s, max_retries=config.max_retries,
                   retry_backoff_s=config.retry_backoff_s, **kwargs)

    async def __aenter__(self) -> "RolloutClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.resync is not None:
                endpoint.resync.cancel()
        await self._http.aclose()

    # -- endpoint choice and failure bookkeeping

    def _pick(self, tried: set[str]) -> _Endpoint | None:
        now = time.monotonic()
        for candidates in (
            [e for e in self.endpoints if e.usable(now) and e.url not in tried],
            [e for e in self.endpoints if not e.stale and e.url not in tried],  # down, but maybe back
            [e for e in self.endpoints if e.usable(now)],  # everything tried: try again
            [e for e in self.endpoints if not e.stale],
        ):
            if candidates:
                break
        else:
            return None
        start = next(self._rotation) % len(self.endpoints)
        order = {e.url: (self.endpoints.index(e) - start) % len(self.endpoints) for e in candidates}
        if self.balance == "round_robin":
            return min(candidates, key=lambda e: order[e.url])
        return min(candidates, key=lambda e: (e.in_flight, order[e.url]))

    def _mark_failed(self, endpoint: _Endpoint, reason: str) -> None:
        endpoint.failures += 1
        cooldown = min(self.retry_backoff_s * 2 ** (endpoint.failures - 1), MAX_COOLDOWN_S)
        endpoint.down_until = time.monotonic() + cooldown
        self._failures.labels(service="rollout", endpoint=endpoint.url).inc()
        log.warning("rollout endpoint %s failed (%s); cooling down %.1fs", endpoint.url, reason, cooldown)

    @staticmethod
    def _mark_ok(endpoint: _Endpoint) -> None:
        endpoint.failures = 0
        endpoint.down_until = 0.0

    async def _call(self, method: str, path: str, payload: Any = None, *, accept: Any = None) -> tuple[Any, _Endpoint]:
        """One logical call with failover. `accept(data, endpoint)` may raise ValueError to reject
        an answer (garbled, stale weights): that counts as an endpoint failure."""
        self._start_resyncs()
        tried: set[str] = set()
        errors: list[tuple[str, str]] = []
        for attempt in range(self.max_retries + 1):
            endpoint = self._pick(tried)
            if endpoint is None:
                stale = ", ".join(self.stale_endpoints)
                errors.append(("*", f"no usable endpoint (stale after a failed weight sync: {stale})"))
                break
            if endpoint.url in tried:
                await asyncio.sleep(min(self.retry_backoff_s * 2 ** attempt, MAX_COOLDOWN_S) * (0.5 + random.random()))
            tried.add(endpoint.url)
            endpoint.in_flight += 1
            try:
                response = await self._http.request(method, endpoint.url + path, json=payload)
            except httpx.TimeoutException as exc:
                reason = f"timeout after {self.timeout.read}s ({type(exc).__name__})"
                self._mark_failed(endpoint, reason)
                errors.append((endpoint.url, reason))
                continue
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self._mark_failed(endpoint, reason)
                errors.append((endpoint.url, reason))
                continue
            finally:
                endpoint.in_flight -= 1
            if response.status_code in _RETRYABLE_STATUS:
                reason = f"HTTP {response.status_code}: {_error_message(response)}"
                self._mark_failed(endpoint, reason)
                errors.append((endpoint.url, reason))
                continue
            if response.status_code >= 400:
                raise RolloutRequestError(response.status_code, _error_message(response), endpoint.url)
            try:
                data = response.json() if response.content else None
                if accept is not None:
                    data = accept(data, endpoint)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # garbled answer
                reason = f"bad answer: {exc}"
                self._mark_failed(endpoint, reason)
                errors.append((endpoint.url, reason))
                continue
            self._mark_ok(endpoint)
            return data, endpoint
        raise RolloutUnavailable(errors)

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
                        endpoint.stale = True
                        raise ValueError(f"generated with weights {completion.weight_version!r}, "
                                         f"expected {self.expected_version!r}")
            return completions

        completions, _ = await self._call("POST", "/generate", payload, accept=accept)
        return completions

    async def chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/chat/completions (OpenAI body); the raw OpenAI answer."""
        data, _ = await self._call("POST", "/v1/chat/completions", payload)
        return data

    # -- health and info

    async def health(self, timeout_s: float = 5.0) -> dict[str, bool]:
        """GET /health on every endpoint: {url: healthy}."""

        async def probe(endpoint: _Endpoint) -> bool:
            try:
                response = await self._http.get(endpoint.url + "/health", timeout=timeout_s)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        results = await asyncio.gather(*(probe(endpoint) for endpoint in self.endpoints))
        return {endpoint.url: ok for endpoint, ok in zip(self.endpoints, results)}

    async def wait_ready(self, timeout_s: float = 300.0, interval_s: float = 0.5) -> None:
        """Wait until every endpoint answers /health with 200."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.health()
            if all(status.values()):
                return
            if time.monotonic() > deadline:
                down = [url for url, ok in status.items() if not ok]
                raise RolloutUnavailable([(url, "not healthy") for url in down])
            await asyncio.sleep(interval_s)

    async def model_info(self, endpoint: str) -> dict[str, Any]:
        response = await self._http.get(endpoint.rstrip("/") + "/get_model_info")
        response.raise_for_status()
        return response.json()

    async def flush_cache(self) -> dict[str, bool]:
        async def flush(endpoint: _Endpoint) -> bool:
            try:
                return (await self._http.post(endpoint.url + "/flush_cache")).status_code == 200
            except httpx.HTTPError:
                return False

        results = await asyncio.gather(*(flush(endpoint) for endpoint in self.endpoints))
        return {endpoint.url: ok for endpoint, ok in zip(self.endpoints, results)}

    # -- weight sync

    async def update_weights(self, path: str, version: str, *, require_all: bool = False,
                             load_format: str | None = None) -> list[EndpointUpdate]:
        """Make every endpoint reload weights from `path` (dir or s3:// URI) as `version`.

        Endpoints that fail become stale (no traffic) and are re-synced in the background. Raises
        ``WeightSyncError`` if none succeeded, or any failed with `require_all`."""
        self.weights_path, self.expected_version = path, str(version)
        results = await asyncio.gather(*(self._update_one(endpoint, load_format) for endpoint in self.endpoints))
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
        try:
            response = await self._http.post(endpoint.url + "/update_weights_from_disk", json=body)
            if response.status_code != 200:
                raise RolloutError(f"HTTP {response.status_code}: {_error_message(response)}")
            info = (await self._http.get(endpoint.url + "/get_model_info")).json()
            served = None if info.get("weight_version") is None else str(info.get("weight_version"))
            if served != self.expected_version:
                raise RolloutError(f"serves weight version {served!r} after the update")
        except (httpx.HTTPError, RolloutError, ValueError) as exc:
            endpoint.stale = True
            self._mark_failed(endpoint, f"weight update: {exc}")
            return EndpointUpdate(endpoint.url, False, str(exc))
        endpoint.stale = False
        endpoint.weight_version = served
        self._mark_ok(endpoint)
        return EndpointUpdate(endpoint.url, True, "ok", served)

    def _start_resyncs(self) -> None:
        """Background re-sync of stale endpoints whose cool-down has passed."""
        if self.weights_path is None:
            return
        now = time.monotonic()
        for endpoint in self.endpoints:
            busy = endpoint.resync is not None and not endpoint.resync.done()
            if endpoint.stale and not busy and now >= endpoint.down_until:
                endpoint.resync = asyncio.get_running_loop().create_task(self._update_one(endpoint))

    @property
    def stale_endpoints(self) -> list[str]:
        return [endpoint.url for endpoint in self.endpoints if endpoint.stale]


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(data, dict):
        if isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data))
        return str(data.get("message") or data.get("detail") or data)
    return str(data)[:500]


async def update_weights(endpoints: list[str], path: str, version: str, *, timeout_s: float = 600.0,
                         load_format: str | None = None) -> list[EndpointUpdate]:
    """Reload weights from `path` on every endpoint as `version`; raises ``WeightSyncError`` unless
    all of them serve `version` afterwards (the strict form; ``RolloutClient.update_weights`` is the
    lenient one a training loop uses, where a dead pod must not stop the run)."""
    async with RolloutClient(endpoints, timeout_s=timeout_s) as client:
        return await client.update_weights(path, version, require_all=True, load_format=load_format)
