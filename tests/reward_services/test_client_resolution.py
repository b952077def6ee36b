"""RewardClient over a headless Service: one endpoint per pod address the name resolves to, the
name resolved again periodically and after a failure (a rescheduled pod has a new address).

The "pods" are HTTP servers on their own loopback addresses (127.0.0.x, one port, as pods behind
one Service port) answering POST /v1/score with the scoring library itself, so items are
validated and scored as reward-accuracy does; the resolver is a table standing in for cluster DNS.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from videop2r.local_services import free_port
from videop2r.rewards import ScoreRequest, score_response
from videop2r.rewards.client import RewardClient

SERVICE = "reward-accuracy.ml.svc"


class Pod:
    """A reward-accuracy stand-in on `address:port` that counts the items it scored."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.items = address, 0
        pod = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                results = [score_response(ScoreRequest.model_validate(item)) for item in body["items"]]
                pod.items += len(results)
                payload = json.dumps({"results": results}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class DNS:
    """Cluster DNS for one headless Service: its name -> the addresses of the ready pods."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.lookups = Counter()

    def __call__(self, host: str, port: int, type: int | None = None) -> list:
        self.lookups[host] += 1
        if host != SERVICE or not self.addresses:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, type, 6, "", (address, port)) for address in self.addresses]


def items(count: int) -> list[ScoreRequest]:
    return [ScoreRequest(id=i, problem_type="multiple choice", answer="B",
                         response=f"<observation>o</observation><think>t</think><answer>{'AB'[i % 2]}</answer>")
            for i in range(count)]


@pytest.fixture
def pods():
    port = free_port()
    started: list[Pod] = []

    def start(address: str) -> Pod:
        started.append(Pod(address, port))
        return started[-1]

    yield port, start
    for pod in started:
        pod.stop()


async def test_chunks_spread_over_every_pod_and_follow_a_rescheduled_one(pods) -> None:
    port, start = pods
    first, second = start("127.0.0.2"), start("127.0.0.3")
    dns = DNS()
    dns.addresses = [first.address, second.address]
    batch = items(64)
    expected = [score_response(item) for item in batch]
    async with RewardClient(accuracy_endpoints=[f"http://{SERVICE}:{port}"], min_chunk=8, retries=3,
                            backoff_s=0.01, resolve=dns, registry=CollectorRegistry()) as client:
        assert await client.score(batch) == expected
        assert first.items == second.items == 32, "one chunk per pod behind the Service"
        # the second pod is rescheduled: gone from its address, back at a new one
        second.stop()
        third = start("127.0.0.4")
        dns.addresses = [first.address, third.address]
        assert await client.score(batch) == expected, "nothing lost: the failed chunk went elsewhere"
        await asyncio.sleep(1.05)  # EndpointSet.min_interval_s: at most one lookup a second after failures
        assert await client.score(batch) == expected
        assert dns.lookups[SERVICE] == 2, "the failure made the client resolve the name again (once)"
        assert await client.endpoints("reward-accuracy") == [f"http://127.0.0.2:{port}", f"http://127.0.0.4:{port}"]
    assert third.items == 32, "the new pod is in rotation"


async def test_added_pods_join_on_the_periodic_resolution(pods) -> None:
    port, start = pods
    first = start("127.0.0.5")
    dns = DNS()
    dns.addresses = [first.address]
    async with RewardClient(accuracy_endpoints=[f"http://{SERVICE}:{port}"], min_chunk=8,
                            resolve=dns, resolve_every_s=0.0, registry=CollectorRegistry()) as client:
        await client.score(items(32))
        assert first.items == 32
        added = start("127.0.0.6")  # the HPA scaled up
        dns.addresses = [first.address, added.address]
        await client.score(items(32))
    assert (first.items, added.items) == (48, 16)


async def test_an_unresolvable_name_is_an_endpoint_failure_not_a_crash(pods) -> None:
    port, _ = pods
    from videop2r.rewards.client import RewardServiceError

    async with RewardClient(accuracy_endpoints=[f"http://{SERVICE}:{port}"], retries=1, backoff_s=0.01,
                            resolve=DNS(), registry=CollectorRegistry()) as client:
        with pytest.raises(RewardServiceError, match="2 attempts"):
            await client.score(items(4))
