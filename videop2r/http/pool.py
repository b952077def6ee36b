"""One pool of HTTP endpoints of a service: choice, failure bookkeeping, re-resolution, failover.

`await pool.call(method, path, payload, accept=...)` is one logical request:

- choice: least-loaded (fewest requests in flight from this pool, ties in rotation) or
  round-robin, among endpoints in rotation and not cooling down; an endpoint tried already in
  this call comes last; one cooling down is still tried when nothing else is left;
- failures: a connection error, a timeout, a retryable status (`videop2r.http.retry`) or an answer
  `accept` rejects (`ProtocolError`, or a ValueError/TypeError/KeyError from parsing) cools the
  endpoint down and the request goes to another one, up to `policy.max_retries` times, backing
  off only before going back to an endpoint already tried; another 4xx raises `RequestRefused`
  at once; when every attempt failed, `EndpointUnavailable` lists them;
- out of rotation: an endpoint a client took out (`endpoint.out_of_rotation`, e.g. a rollout pod
  that missed a weight sync) gets no traffic until the client puts it back; when no endpoint is
  left, the `rejoin` hook may bring some back (the rollout client waits for its re-syncs);
- re-resolution: with an `EndpointSet`, the configured Service names are resolved again when due
  (every 30 s, soon after a failure) and the list reconciled: state kept for addresses still
  there, new ones made by `make_endpoint`, gone ones dropped once idle (`on_dropped` is told).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from videop2r.http.errors import (
    EndpointUnavailable,
    Failure,
    ProtocolError,
    RequestRefused,
    error_message,
    retry_after,
    unavailable_message,
)
from videop2r.http.resolution import EndpointSet, reconcile
from videop2r.http.retry import RetryPolicy, is_retryable

log = logging.getLogger(__name__)

BALANCES = ("least_loaded", "round_robin")
_BAD_ANSWER = (ProtocolError, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(eq=False)
class Endpoint:
    """One endpoint and what the pool knows of it."""

    url: str
    in_flight: int = 0
    failures: int = 0  # in a row
    down_until: float = 0.0  # cooling down until this time.monotonic()
    out_of_rotation: bool = False  # no traffic at all until a client puts it back

    def usable(self, now: float) -> bool:
        return not self.out_of_rotation and now >= self.down_until


class EndpointPool:
    """The endpoints of `service` (see the module docstring); owns its httpx client. Close with `aclose`."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        service: str,
        policy: RetryPolicy | None = None,
        balance: str = "least_loaded",
        timeout: httpx.Timeout | float = 60.0,
        headers: dict[str, str] | None = None,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: EndpointSet | None = None,
        make_endpoint: Callable[[str], Endpoint] = Endpoint,
        on_dropped: Callable[[Endpoint], None] | None = None,
        rejoin: Callable[[], Awaitable[bool]] | None = None,
        failures_metric: Any = None,
        refused: type[RequestRefused] = RequestRefused,
        unavailable: type[EndpointUnavailable] = EndpointUnavailable,
    ) -> None:
        if balance not in BALANCES:
            raise ValueError(f"balance must be least_loaded or round_robin, got {balance!r}")
        self.service = service
        self.policy = policy or RetryPolicy()
        self.balance = balance
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.resolver = resolver
        self._make = make_endpoint
        self.endpoints: list[Endpoint] = [make_endpoint(url.rstrip("/")) for url in urls]
        self._on_dropped = on_dropped
        self._rejoin = rejoin
        self._failures = failures_metric  # videop2r_endpoint_failures_total, or None: not counted
        self._refused, self._unavailable = refused, unavailable
        self._rotation = itertools.count()
        self.http = httpx.AsyncClient(
            headers=headers or {}, timeout=self.timeout, transport=transport,
            limits=limits or httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    @property
    def urls(self) -> list[str]:
        return [endpoint.url for endpoint in self.endpoints]

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- the endpoint list

    async def refresh(self) -> None:
        """Resolve the Service names again when due and reconcile the list; a no-op without a resolver."""
        if self.resolver is None or not self.resolver.due():
            return
        urls = await self.resolver.acurrent()
        endpoints, added, dropped = reconcile(self.endpoints, urls, self._make)
        if self._on_dropped is not None:
            for endpoint in self.endpoints:
                if endpoint.url in dropped:
                    self._on_dropped(endpoint)
        if added or dropped:
            log.info("%s endpoints: +%s -%s (now %d)", self.service, added, dropped, len(endpoints))
        self.endpoints = endpoints

    def pick(self, tried: Collection[str] = ()) -> Endpoint | None:
        now = time.monotonic()
        for candidates in (
            [e for e in self.endpoints if e.usable(now) and e.url not in tried],
            [e for e in self.endpoints if not e.out_of_rotation and e.url not in tried],  # down, maybe back
            [e for e in self.endpoints if e.usable(now)],  # everything tried: try again
            [e for e in self.endpoints if not e.out_of_rotation],
        ):
            if candidates:
                break
        else:
            return None
        start = next(self._rotation) % len(self.endpoints)
        order = {id(e): (self.endpoints.index(e) - start) % len(self.endpoints) for e in candidates}
        if self.balance == "round_robin":
            return min(candidates, key=lambda e: order[id(e)])
        return min(candidates, key=lambda e: (e.in_flight, order[id(e)]))

    def mark_failed(self, endpoint: Endpoint, reason: str, retry_after_s: float | None = None) -> None:
        """Cool `endpoint` down (longer with each failure in a row), count it, resolve again soon."""
        endpoint.failures += 1
        cooldown = self.policy.cooldown(endpoint.failures, retry_after_s)
        endpoint.down_until = time.monotonic() + cooldown
        if self._failures is not None:
            self._failures.labels(service=self.service, endpoint=endpoint.url).inc()
        if self.resolver is not None:
            self.resolver.invalidate()  # the pod may be gone or back at another address
        log.warning("%s endpoint %s failed (%s); cooling down %.1fs", self.service, endpoint.url, reason, cooldown)

    @staticmethod
    def mark_ok(endpoint: Endpoint) -> None:
        endpoint.failures = 0
        endpoint.down_until = 0.0

    # -- requests

    async def attempt(self, endpoint: Endpoint, method: str, path: str, payload: Any = None,
                      accept: Callable[[Any, Endpoint], Any] | None = None) -> Any:
        """One try on `endpoint`: the (accepted) JSON answer, or a `Failure` (already marked).
        Raises `RequestRefused` on a non-retryable 4xx."""
        endpoint.in_flight += 1
        try:
            response = await self.http.request(method, endpoint.url + path, json=payload)
        except httpx.TimeoutException as exc:
            return self._failed(endpoint, f"timeout after {self.timeout.read}s ({type(exc).__name__})", "timeout")
        except httpx.TransportError as exc:
            return self._failed(endpoint, f"{type(exc).__name__}: {exc}", "connection")
        finally:
            endpoint.in_flight -= 1
        status = response.status_code
        if is_retryable(status):
            return self._failed(endpoint, f"HTTP {status}: {error_message(response)}", "status",
                                status, retry_after(response))
        if status >= 400:
            raise self._refused(self.service, endpoint.url, status, error_message(response))
        try:
            data = response.json() if response.content else None
        except ValueError:
            return self._failed(endpoint, f"bad answer: not JSON: {response.text[:200]!r}", "protocol", status)
        if accept is not None:
            try:
                data = accept(data, endpoint)
            except _BAD_ANSWER as exc:
                return self._failed(endpoint, f"bad answer: {exc}", "protocol", status)
        self.mark_ok(endpoint)
        return data

    async def call(self, method: str, path: str, payload: Any = None, *,
                   accept: Callable[[Any, Endpoint], Any] | None = None, what: str = "") -> tuple[Any, Endpoint]:
        """One logical request with failover (module docstring); `accept(data, endpoint)` may reject
        an answer. Returns (answer, the endpoint that gave it); `what` names the request in errors."""
        await self.refresh()
        failures: list[Failure] = []
        tried: set[str] = set()
        for retry in range(self.policy.max_retries + 1):
            if retry:
                await self.refresh()  # after a failure: pods may have moved
            endpoint = self.pick(tried)
            if endpoint is None and self._rejoin is not None and await self._rejoin():
                endpoint = self.pick(tried)
            if endpoint is None:
                out = ", ".join(e.url for e in self.endpoints if e.out_of_rotation)
                failures.append(Failure("*", f"no usable endpoint (out of rotation: {out or 'none'})", "none"))
                break
            if endpoint.url in tried:
                await asyncio.sleep(self.policy.delay(retry, failures[-1].retry_after_s if failures else None))
            tried.add(endpoint.url)
            outcome = await self.attempt(endpoint, method, path, payload, accept)
            if isinstance(outcome, Failure):
                failures.append(outcome)
                continue
            return outcome, endpoint
        raise self._unavailable(unavailable_message(self.service, failures, what), failures)

    async def each(self, method: str, path: str, *, timeout: float | None = None) -> dict[str, bool]:
        """`method path` on every endpoint at once: {url: answered 200}."""

        async def one(endpoint: Endpoint) -> bool:
            try:
                extra = {} if timeout is None else {"timeout": timeout}
                response = await self.http.request(method, endpoint.url + path, **extra)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        endpoints = list(self.endpoints)
        results = await asyncio.gather(*(one(endpoint) for endpoint in endpoints))
        return {endpoint.url: ok for endpoint, ok in zip(endpoints, results)}

    def _failed(self, endpoint: Endpoint, reason: str, kind: str, status: int | None = None,
                retry_after_s: float | None = None) -> Failure:
        self.mark_failed(endpoint, reason, retry_after_s)
        return Failure(endpoint.url, reason, kind, status, retry_after_s)
