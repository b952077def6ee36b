"""Weight sync through rollout.weights_dir against several embedded rollout servers, one failing.

The servers are the real embedded app (``services.rollout.app.create_app`` around a loaded tiny
engine), three instances in this process behind one httpx transport that routes by host, so the
driver's ``RolloutClient`` talks HTTP to each exactly as to pods. A "failing pod" is one whose
weight load fails the way a pod without the shared volume fails (the directory is not there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path

import httpx
import pytest
import torch
from prometheus_client import CollectorRegistry

from videop2r.learner.export import WEIGHT_VERSION_FILE
from videop2r.train.weight_sync import (
    WeightSync,
    WeightSyncFailed,
    download_export,
    upload_export,
    version_dir,
    weights_dir_of,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from videop2r.model import init_model

    return init_model("tiny", tmp_path_factory.mktemp("sync-model") / "tiny")


class Router(httpx.AsyncBaseTransport):
    """One ASGI app per host: http://pod-0, http://pod-1, ..."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


class Pods:
    """N embedded servers (lifespans running) and a RolloutClient over them."""

    def __init__(self, tiny: Path, count: int, registry) -> None:
        from services.rollout.app import create_app
        from services.rollout.engine import GenerationEngine

        base = GenerationEngine.load(str(tiny), device="cpu")
        self.engines = [GenerationEngine(base.model, base.processor, model_path=str(tiny)) for _ in range(count)]
        self.apps = {f"pod-{i}": create_app(engine, registry=registry) for i, engine in enumerate(self.engines)}
        self.urls = [f"http://{host}" for host in self.apps]
        self.broken: dict[int, int] = {}  # pod index -> loads that still fail (-1: always)
        for index, engine in enumerate(self.engines):
            engine.reload = self._failing(index, engine.reload)

    def _failing(self, index: int, reload):
        def wrapped(path, weight_version, storage_config=None):
            left = self.broken.get(index, 0)
            if left:
                self.broken[index] = left - 1 if left > 0 else left
                raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}' (no shared volume on pod-{index})")
            return wrapped.real(path, weight_version, storage_config)

        wrapped.real = reload
        return wrapped

    @contextlib.contextmanager
    def running(self, **client_args):
        """On one asyncio.Runner, as in the driver: server lifespans, then a client; yields (client, runner)."""
        from videop2r.rollout import RolloutClient

        stack = contextlib.AsyncExitStack()

        async def start():
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            client = RolloutClient(self.urls, transport=Router(self.apps), retry_backoff_s=0.05, **client_args)
            stack.push_async_callback(client.aclose)
            return client

        with asyncio.Runner() as runner:
            try:
                yield runner.run(start()), runner
            finally:
                runner.run(stack.aclose())


def fake_export(source: Path, calls: list):
    """An export shaped like the learner's: an HF checkpoint, weight_version.json written last."""

    def export(target: str, version: int) -> dict:
        calls.append((target, version))
        target_dir = Path(target)
        shutil.copytree(source, target_dir, dirs_exist_ok=True)
        record = {"version": version, "files": sorted(p.name for p in source.iterdir())}
        (target_dir / WEIGHT_VERSION_FILE).write_text(json.dumps(record))
        return record

    return export


def gauge(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels)


def folders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_weights_dir_default_and_config(tmp_path):
    from videop2r.config import ConfigError, load_config

    assert weights_dir_of(load_config(), tmp_path / "run") == (tmp_path / "run" / "weights").resolve()
    config = load_config(overrides=[f"rollout.weights_dir={tmp_path}/shared"])
    assert weights_dir_of(config, tmp_path / "run") == tmp_path / "shared"
    assert version_dir(tmp_path, 7) == tmp_path / "v7"
    with pytest.raises(ConfigError, match="rollout.weights_dir: .*local directory"):
        load_config(overrides=["rollout.weights_dir=s3://bucket/weights"])


def test_every_pod_loads_the_local_path_and_old_versions_go(tiny, tmp_path):
    registry = CollectorRegistry()
    pods = Pods(tiny, 3, registry)
    calls: list = []
    weights = tmp_path / "weights"
    with pods.running() as (client, runner):
        sync = WeightSync(weights, client, fake_export(tiny, calls), runner.run, retries=1, run_name="r",
                          registry=registry)
        for version in (1, 2, 3):
            report = sync.publish(version)
            assert report.failed == {} and sorted(report.updated) == pods.urls
            assert folders(weights) == [f"v{version}"]  # the older one went once every pod moved on
        served = client.served_versions
    assert calls == [(str(weights / f"v{v}"), v) for v in (1, 2, 3)]
    # every pod was given the local directory (never an s3:// URI) and serves it
    assert {engine.model_path for engine in pods.engines} == {str(weights / "v3")}
    assert served == {url: "3" for url in pods.urls}
    for url in pods.urls:
        assert gauge(registry, "videop2r_rollout_endpoint_weight_version", run="r", endpoint=url) == 3
        assert gauge(registry, "videop2r_rollout_endpoint_in_rotation", run="r", endpoint=url) == 1


def test_a_failing_pod_is_retried_then_out_of_rotation_until_it_reports_the_version(tiny, tmp_path):
    registry = CollectorRegistry()
    pods = Pods(tiny, 3, registry)
    weights = tmp_path / "weights"
    payload = {"text": "Name a colour.", "sampling_params": {"max_new_tokens": 2, "temperature": 0.0}}
    with pods.running() as (client, runner):
        sync = WeightSync(weights, client, fake_export(tiny, []), runner.run, retries=2, run_name="r",
                          registry=registry)
        sync.publish(1)
        pods.broken[1] = 2  # fails twice: the second retry loads
        report = sync.publish(2)
        assert report.failed == {} and client.served_versions[pods.urls[1]] == "2"

        pods.broken[2] = -1  # pod-2 lost its volume: every load fails
        report = sync.publish(3)
        assert list(report.failed) == [pods.urls[2]] and "No such file or directory" in report.failed[pods.urls[2]]
        assert client.stale_endpoints == [pods.urls[2]]
        assert folders(weights) == ["v2", "v3"]  # pod-2 still serves v2: its folder stays
        assert gauge(registry, "videop2r_rollout_endpoint_in_rotation", run="r", endpoint=pods.urls[2]) == 0
        assert gauge(registry, "videop2r_rollout_endpoint_weight_version", run="r", endpoint=pods.urls[2]) == 2

        # the step goes on with the others: every request lands on pod-0 or pod-1, generated with v3
        async def burst(count: int):
            return await asyncio.gather(*(client.generate(payload) for _ in range(count)))

        results = runner.run(burst(6))
        assert {c.endpoint for r in results for c in r} <= {pods.urls[0], pods.urls[1]}
        assert {c.weight_version for r in results for c in r} == {"3"}

        # the volume is back: the background re-sync (started by later requests once the pod's
        # cool-down has passed) brings pod-2 into rotation with v3
        pods.broken[2] = 0

        async def until_resynced():
            for _ in range(200):
                await client.generate(payload)
                if not client.stale_endpoints:
                    return
                await asyncio.sleep(0.05)

        runner.run(until_resynced())
        assert client.stale_endpoints == [] and client.served_versions[pods.urls[2]] == "3"
        sync.observe()
        assert folders(weights) == ["v3"]
        assert gauge(registry, "videop2r_rollout_endpoint_in_rotation", run="r", endpoint=pods.urls[2]) == 1
        assert gauge(registry, "videop2r_rollout_endpoint_weight_version", run="r", endpoint=pods.urls[2]) == 3


def test_every_pod_failing_stops_with_a_clear_error(tiny, tmp_path):
    registry = CollectorRegistry()
    pods = Pods(tiny, 2, registry)
    with pods.running() as (client, runner):
        sync = WeightSync(tmp_path / "weights", client, fake_export(tiny, []), runner.run, retries=1, run_name="r",
                          registry=registry)
        pods.broken.update({0: -1, 1: -1})
        with pytest.raises(WeightSyncFailed) as failed:
            sync.publish(1)
    message = str(failed.value)
    assert "no rollout endpoint took weight version 1" in message and "each tried 2 times" in message
    assert str(tmp_path / "weights" / "v1") in message and "rollout.weights_dir" in message
    assert "pod-0" in message and "pod-1" in message and "No such file or directory" in message


def test_an_export_the_driver_cannot_see_is_refused_before_any_pod_is_asked(tiny, tmp_path):
    registry = CollectorRegistry()
    pods = Pods(tiny, 1, registry)
    with pods.running() as (client, runner):
        sync = WeightSync(tmp_path / "weights", client, lambda target, version: None, runner.run, run_name="r",
                          registry=registry)
        with pytest.raises(WeightSyncFailed, match="not visible at .*v4 on the driver.*shared"):
            sync.publish(4)
    assert pods.engines[0].model_path == str(tiny)


def test_checkpoint_copies_are_complete_exports(tiny, tmp_path):
    export = fake_export(tiny, [])
    export(str(tmp_path / "weights" / "v5"), 5)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "old.safetensors").write_bytes(b"stale")
    names = upload_export(tmp_path / "weights" / "v5", str(tmp_path / "ckpt"))
    assert names[-1] == WEIGHT_VERSION_FILE and not (tmp_path / "ckpt" / "old.safetensors").exists()
    assert json.loads((tmp_path / "ckpt" / WEIGHT_VERSION_FILE).read_text())["version"] == 5
    back = download_export(str(tmp_path / "ckpt"), tmp_path / "weights" / "v6")
    assert folders(back) == folders(tmp_path / "weights" / "v5")
    with pytest.raises(WeightSyncFailed, match="not a complete export"):
        upload_export(tiny, str(tmp_path / "other"))
