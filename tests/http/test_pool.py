"""The endpoint pool every HTTP client uses: choice, the one retry policy, failover, errors, re-resolution."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from videop2r.http import (
    EndpointError,
    EndpointPool,
    EndpointSet,
    EndpointUnavailable,
    ProtocolError,
    RequestRefused,
    RetryPolicy,
    is_retryable,
)
from videop2r.metrics import metric

FAST = RetryPolicy(max_retries=3, backoff_s=0.001, cooldown_s=60.0)


def _pool(answers: dict[str, list[httpx.Response | Exception]], seen: list[str] | None = None,
          **kwargs) -> EndpointPool:
    """A pool over hosts a, b, c... whose answers are popped in order (the last one repeats)."""

    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if seen is not None:
            seen.append(host)
        queue = answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    kwargs.setdefault("policy", FAST)
    return EndpointPool([f"http://{host}" for host in answers], service="svc",
                        transport=httpx.MockTransport(handle), **kwargs)


def test_one_retryable_status_policy() -> None:
    assert all(is_retryable(status) for status in (408, 409, 425, 429, 500, 501, 502, 503, 504, 599))
    assert not any(is_retryable(status) for status in (200, 400, 401, 403, 404, 413, 422))


def test_backoff_doubles_with_jitter_and_retry_after_wins() -> None:
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=5.0, cooldown_s=2.0, max_cooldown_s=10.0)
    assert all(0.5 <= policy.delay(1) < 1.0 and 2.0 <= policy.delay(3) < 4.0 for _ in range(50))
    assert 2.5 <= policy.delay(9) < 5.0  # capped
    assert policy.delay(1, retry_after_s=3.0) == 3.0 and policy.delay(1, retry_after_s=99) == 5.0
    assert [policy.cooldown(n) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.cooldown(1, retry_after_s=7.0) == 7.0


def test_endpoints_in_cooldown_or_out_of_rotation_go_last() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"], service="svc", balance="round_robin")
    assert [pool.pick().url for _ in range(3)] == ["http://a", "http://b", "http://c"]
    pool.endpoints[1].down_until = float("inf")
    assert {pool.pick().url for _ in range(6)} == {"http://a", "http://c"}
    assert pool.pick({"http://a", "http://c"}).url == "http://b"  # cooling down, but the only one left
    pool.endpoints[1].out_of_rotation = True
    assert pool.pick({"http://a", "http://c"}).url in ("http://a", "http://c")  # never an out-of-rotation one
    for endpoint in pool.endpoints:
        endpoint.out_of_rotation = True
    assert pool.pick() is None


def test_least_loaded_takes_the_endpoint_with_fewest_in_flight() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"], service="svc")
    pool.endpoints[0].in_flight, pool.endpoints[1].in_flight = 2, 1
    assert {pool.pick().url for _ in range(5)} == {"http://c"}
    pool.endpoints[2].in_flight = 3
    assert pool.pick().url == "http://b"


async def test_failover_is_immediate_and_the_failure_counted_and_cooled_down() -> None:
    registry = CollectorRegistry()
    seen: list[str] = []
    pool = _pool({"a": [httpx.Response(503, json={"error": "busy"})], "b": [httpx.Response(200, json={"x": 1})]},
                 seen, balance="round_robin", policy=RetryPolicy(max_retries=2, backoff_s=30.0, cooldown_s=60.0),
                 failures_metric=metric("videop2r_endpoint_failures_total", registry))
    started = time.monotonic()
    for _ in range(3):
        data, endpoint = await pool.call("POST", "/x", {})
        assert data == {"x": 1} and endpoint.url == "http://b"
    assert time.monotonic() - started < 5, "failing over to another endpoint does not back off"
    assert seen == ["a", "b", "b", "b"], "the failed endpoint cools down"
    assert registry.get_sample_value("videop2r_endpoint_failures_total", {"service": "svc", "endpoint": "http://a"}) == 1
    await pool.aclose()


async def test_a_4xx_is_refused_at_once_with_the_servers_message() -> None:
    seen: list[str] = []
    pool = _pool({"a": [httpx.Response(422, json={"error": "items.0.id: Field required"})],
                  "b": [httpx.Response(200, json={})]}, seen, balance="round_robin")
    with pytest.raises(RequestRefused, match="svc at http://a refused the request: HTTP 422: items.0.id") as refused:
        await pool.call("POST", "/x", {})
    assert (refused.value.status, refused.value.endpoint, seen) == (422, "http://a", ["a"])


async def test_every_attempt_failed_lists_each_with_its_kind() -> None:
    def garbled(data, endpoint):
        raise ProtocolError("no results")

    pool = _pool({"a": [httpx.ConnectError("refused")], "b": [httpx.ReadTimeout("slow")],
                  "c": [httpx.Response(200, text="<html>"), httpx.Response(200, json={}),
                        httpx.Response(429, headers={"Retry-After": "0.01"})]},
                 balance="round_robin", policy=RetryPolicy(max_retries=4, backoff_s=0.001, cooldown_s=0.0))
    with pytest.raises(EndpointUnavailable) as failed:
        await pool.call("POST", "/x", {}, accept=garbled, what="4 items")
    kinds = [(f.endpoint, f.kind) for f in failed.value.failures]
    assert kinds == [("http://a", "connection"), ("http://b", "timeout"), ("http://c", "protocol"),
                     ("http://a", "connection"), ("http://b", "timeout")]
    assert str(failed.value).startswith("svc: 4 items failed after 5 attempts: http://a: ConnectError")
    assert failed.value.errors[2] == ("http://c", "bad answer: not JSON: '<html>'")
    status = await _single_failure({"c": [httpx.Response(429, headers={"Retry-After": "0.01"})]})
    assert (status.kind, status.status, status.retry_after_s) == ("status", 429, 0.01)
    protocol = await _single_failure({"c": [httpx.Response(200, json={})]}, accept=garbled)
    assert (protocol.kind, protocol.reason) == ("protocol", "bad answer: no results")


async def _single_failure(answers, **kwargs):
    pool = _pool(answers, policy=RetryPolicy(max_retries=0))
    with pytest.raises(EndpointUnavailable) as failed:
        await pool.call("POST", "/x", {}, **kwargs)
    return failed.value.last


async def test_the_rejoin_hook_runs_when_no_endpoint_is_in_rotation() -> None:
    calls = []

    async def rejoin() -> bool:
        calls.append(1)
        pool.endpoints[0].out_of_rotation = False
        return True

    pool = _pool({"a": [httpx.Response(200, json={"ok": True})]}, rejoin=rejoin)
    pool.endpoints[0].out_of_rotation = True
    assert (await pool.call("GET", "/x"))[0] == {"ok": True} and calls == [1]
    pool.endpoints[0].out_of_rotation = True
    pool._rejoin = None
    with pytest.raises(EndpointUnavailable, match=r"no usable endpoint \(out of rotation: http://a\)"):
        await pool.call("GET", "/x")


async def test_a_headless_service_is_resolved_again_after_a_failure_and_reconciled() -> None:
    addresses = {"svc.ns": ["10.0.0.1", "10.0.0.2"]}

    def dns(host, port, type=None):
        if host not in addresses:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, type, 6, "", (address, port)) for address in addresses[host]]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.2":
            raise httpx.ConnectError("gone")
        return httpx.Response(200, json={"from": request.url.host})

    dropped = []
    resolver = EndpointSet(["http://svc.ns:80"], resolve=dns, min_interval_s=0.0)
    pool = EndpointPool([], service="svc", resolver=resolver, policy=FAST, balance="round_robin",
                        transport=httpx.MockTransport(handle), on_dropped=lambda e: dropped.append(e.url))
    await pool.refresh()
    kept = pool.endpoints[0]
    assert pool.urls == ["http://10.0.0.1:80", "http://10.0.0.2:80"]
    addresses["svc.ns"] = ["10.0.0.1", "10.0.0.3"]  # the second pod was rescheduled
    for _ in range(2):
        await pool.call("GET", "/x")
    assert pool.urls == ["http://10.0.0.1:80", "http://10.0.0.3:80"] and pool.endpoints[0] is kept
    assert dropped == ["http://10.0.0.2:80"] and resolver.resolutions == 2
    await pool.aclose()


def test_each_client_error_is_one_of_the_boundary_errors() -> None:
    from videop2r.eval.chat_client import ChatError, ChatRequestError, ChatUnavailable
    from videop2r.rewards.client import RewardRequestError, RewardServiceError
    from videop2r.rollout import RolloutError, RolloutRequestError, RolloutUnavailable

    for refused, family in ((RolloutRequestError, RolloutError), (ChatRequestError, ChatError),
                            (RewardRequestError, ValueError)):
        assert issubclass(refused, RequestRefused) and issubclass(refused, family)
    for unavailable, family in ((RolloutUnavailable, RolloutError), (ChatUnavailable, ChatError),
                                (RewardServiceError, EndpointError)):
        assert issubclass(unavailable, EndpointUnavailable) and issubclass(unavailable, family)
