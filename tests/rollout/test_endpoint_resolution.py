"""RolloutClient over a headless Service whose pods are rescheduled: the name is resolved again
after a failure and periodically, a pod at a new address joins once it has the current weights,
and training survives every pod being replaced (a chart upgrade).

Each "pod" is the real embedded rollout server (its own engine) on its own loopback address and
the Service's one port; the resolver is a table standing in for cluster DNS.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from services.rollout.app import create_app
from services.rollout.engine import GenerationEngine
from videop2r.config import RolloutConfig
from videop2r.http.resolution import EndpointSet, reconcile
from videop2r.model import init_model, load_model, load_processor
from videop2r.rollout import RolloutClient, generate_payload
from videop2r.local_services import free_port

SERVICE = "rollout.ml.svc"


class Pod:
    """The embedded rollout server of `model_dir` under uvicorn on `address:port`, in a thread."""

    def __init__(self, model_dir, address: str, port: int) -> None:
        import uvicorn

        engine = GenerationEngine(load_model(model_dir, device="cpu"), load_processor(model_dir),
                                  model_path=str(model_dir))
        self.address = address
        self.server = uvicorn.Server(uvicorn.Config(create_app(engine), host=address, port=port,
                                                    log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "pod did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class DNS:
    def __init__(self) -> None:
        self.addresses: list[str] = []

    def __call__(self, host: str, port: int, type: int | None = None) -> list:
        if host != SERVICE or not self.addresses:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, type, 6, "", (address, port)) for address in self.addresses]


@pytest.fixture
def cluster(tiny_dir):
    port, pods = free_port(), []

    def schedule(address: str) -> Pod:
        pods.append(Pod(tiny_dir, address, port))
        return pods[-1]

    yield port, schedule
    for pod in pods:
        pod.stop()


def payload(video_prompt):
    # SGLang 0.5.23's format: the prompt with one placeholder (the server expands it) + the frames' data URI
    inputs, frames, fps = video_prompt
    return generate_payload(text=TEXT, video=(frames, fps), sampling={"max_new_tokens": 4, "ignore_eos": True})


TEXT = ("<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What colour is the square?<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_reconcile_keeps_state_drops_idle_and_adds_new():
    class E:
        def __init__(self, url, in_flight=0):
            self.url, self.in_flight = url, in_flight

    kept, busy, idle = E("a"), E("b", in_flight=1), E("c")
    endpoints, added, dropped = reconcile([kept, busy, idle], ["a", "d"], E)
    assert endpoints[0] is kept and [e.url for e in endpoints] == ["a", "d", "b"]
    assert (added, dropped) == (["d"], ["c"])


async def test_rescheduled_and_replaced_pods_rejoin_with_the_current_weights(cluster, video_prompt, tmp_path):
    port, schedule = cluster
    first, second = schedule("127.0.0.2"), schedule("127.0.0.3")
    dns = DNS()
    dns.addresses = [first.address, second.address]
    url = lambda pod: f"http://{pod.address}:{port}"
    resolver = EndpointSet([f"http://{SERVICE}:{port}"], resolve=dns, min_interval_s=0.2)
    config = RolloutConfig(endpoints=[f"http://{SERVICE}:{port}"], retry_backoff_s=0.05, max_retries=4)
    new = init_model("tiny", tmp_path / "step-1", seed=1)
    async with RolloutClient.from_config(config, resolver=resolver) as client:
        assert [e.url for e in client.endpoints] == [url(first), url(second)]
        await client.update_weights(str(new), "1", require_all=True)

        # the second pod is rescheduled: its old address is gone, a fresh pod (base weights) is at a new one
        second.stop()
        third = schedule("127.0.0.4")
        dns.addresses = [first.address, third.address]
        served = set()
        deadline = time.monotonic() + 60
        while url(third) not in served:
            assert time.monotonic() < deadline, f"the rescheduled pod never served: {served}"
            [completion] = await client.generate(payload(video_prompt))
            assert completion.weight_version == "1", "no answer from the base weights of a new pod"
            served.add(completion.endpoint)
            await asyncio.sleep(0.1)
        assert url(second) not in [e.url for e in client.endpoints]

        # a chart upgrade replaces every pod at once: the next request waits for the re-sync
        first.stop()
        third.stop()
        fourth, fifth = schedule("127.0.0.5"), schedule("127.0.0.6")
        dns.addresses = [fourth.address, fifth.address]
        await asyncio.sleep(0.25)
        [completion] = await client.generate(payload(video_prompt))
        assert completion.weight_version == "1" and completion.endpoint in (url(fourth), url(fifth))
        assert sorted(e.url for e in client.endpoints) == [url(fourth), url(fifth)]
        assert client.stale_endpoints == [] or set(client.stale_endpoints) < {url(fourth), url(fifth)}
