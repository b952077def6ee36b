"""The rollout client against real embedded servers over loopback: balance, failover, weight sync."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from services.rollout.app import create_app
from services.rollout.engine import GenerationEngine
from services.rollout.media_sources import MediaSources
from videop2r.config import DataConfig
from videop2r.model import init_model, load_model, load_processor
from videop2r.rollout import (
    RolloutClient,
    RolloutRequestError,
    RolloutUnavailable,
    WeightSyncError,
    generate_payload,
    sample_payload,
    sampling_params,
    update_weights,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _free_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once closed


def payload(video_prompt, **sampling):
    from videop2r import prompting

    inputs, frames, fps = video_prompt
    text = prompting.prompt_text(PROCESSOR[0], {"problem": "What colour is the square?",
                                                "options": ["A. red", "B. green", "C. blue", "D. yellow"],
                                                "problem_type": "multiple choice", "data_type": "video"})
    return generate_payload(text=text, video=(frames, fps),
                            sampling={"max_new_tokens": 6, "ignore_eos": True, **sampling})


PROCESSOR: list = []


@pytest.fixture(autouse=True)
def _processor(engine):
    if not PROCESSOR:
        PROCESSOR.append(engine.processor)


@pytest.fixture(scope="module")
def thread_pair(tiny_dir, thread_server):
    """Two servers in this process (own engines), for everything that needs no process signals."""
    servers = []
    for _ in range(2):
        engine = GenerationEngine(load_model(tiny_dir, device="cpu"), load_processor(tiny_dir), model_path=str(tiny_dir))
        # the pod's video config (sglang_release.mm_process_config): the 84x84 test clip is kept as is
        media = MediaSources(DataConfig(video_min_pixels=84 * 84, video_max_pixels=84 * 84, fps=2.0))
        servers.append(thread_server(create_app(engine, media=media)).__enter__())
    yield [server.url for server in servers]
    for server in servers:
        server.__exit__(None, None, None)


# -- no server needed


async def test_no_reachable_endpoint_is_unavailable_with_every_attempt_listed():
    urls = [_free_url(), _free_url()]
    async with RolloutClient(urls, max_retries=2, retry_backoff_s=0.01, connect_timeout_s=1) as client:
        with pytest.raises(RolloutUnavailable) as failure:
            await client.generate({"text": "hi"})
    assert len(failure.value.errors) == 3
    assert {endpoint for endpoint, _ in failure.value.errors} == set(urls)
    assert all("Connect" in reason for _, reason in failure.value.errors)


def test_client_arguments_are_checked():
    with pytest.raises(ValueError):
        RolloutClient([])
    with pytest.raises(ValueError):
        RolloutClient(["http://x"], balance="random")


def test_sampling_params_from_the_config_are_valid_sglang_params():
    from services.rollout.protocol import SamplingParamsIn
    from videop2r.config import RolloutConfig

    config = RolloutConfig(n=4, temperature=0.9, top_p=0.95, max_new_tokens=64, min_new_tokens=2)
    params = sampling_params(config, blocked_token_ids=[5, 6], stop=["</answer>"])
    assert params == {"n": 4, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 64, "min_new_tokens": 2,
                      "logit_bias": {"5": -100.0, "6": -100.0}, "stop": ["</answer>"]}
    SamplingParamsIn.model_validate(params)


def test_completion_reads_an_sglang_answer_and_refuses_garbled_ones():
    from videop2r.rollout import Completion

    answer = {"text": " B", "output_ids": [425, 151645], "meta_info": {
        "id": "abc", "finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 1203,
        "weight_version": "12", "completion_tokens": 2, "cached_tokens": 1100, "num_retractions": 0,
        "output_token_logprobs": [[-0.51, 425, None], [-0.02, 151645, None]], "e2e_latency": 0.4}}
    completion = Completion.from_sglang(answer, "http://pod-0:30000")
    assert completion.output_ids == [425, 151645] and completion.output_logprobs == [-0.51, -0.02]
    assert (completion.finish_reason, completion.matched_stop, completion.weight_version) == ("stop", 151645, "12")
    assert completion.prompt_tokens == 1203 and completion.endpoint == "http://pod-0:30000"
    for garbled in ({"text": "x"}, {"output_ids": [1], "meta_info": {"output_token_logprobs": [[0.0, 1], [0.0, 2]]}},
                    [1, 2]):
        with pytest.raises(ValueError):
            Completion.from_sglang(garbled, "u")


# -- in-process servers


@pytest.mark.integration
async def test_sample_payload_round_trip_and_round_robin(thread_pair, video_prompt, engine):
    inputs, frames, fps = video_prompt

    class Sample:  # videop2r.data.stream.Sample's shape
        record = {"problem": "What colour is the square?", "options": ["A. red", "B. green", "C. blue", "D. yellow"],
                  "problem_type": "multiple choice", "data_type": "video"}
        image = None

    class Clip:
        sample_fps = fps

    Clip.frames = frames
    Sample.video = Clip()
    sampling = sampling_params(None, blocked_token_ids=[1, 2], n=2, max_new_tokens=5, ignore_eos=True)
    body = sample_payload(engine.processor, Sample(), sampling)
    assert "input_ids" not in body and body["video_data"][0].startswith("data:video/quicktime;base64,")
    assert body["sampling_params"]["logit_bias"] == {"1": -100.0, "2": -100.0}
    async with RolloutClient(thread_pair, balance="round_robin") as client:
        seen = []
        for _ in range(4):
            completions = await client.generate(body)
            assert len(completions) == 2
            assert all(len(c.output_ids) == len(c.output_logprobs) == 5 for c in completions)
            assert completions[0].finish_reason == "length" and completions[0].prompt_tokens == inputs["input_ids"].shape[1]
            seen.append(completions[0].endpoint)
    assert seen[0] != seen[1] and set(seen) == set(thread_pair)


@pytest.mark.integration
async def test_least_loaded_spreads_concurrent_requests(thread_pair, video_prompt):
    async with RolloutClient(thread_pair) as client:
        results = await asyncio.gather(*(client.generate(payload(video_prompt, max_new_tokens=20)) for _ in range(4)))
    assert {result[0].endpoint for result in results} == set(thread_pair)


def _count_400(url: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith('videop2r_rollout_requests_total{status="400"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.integration
async def test_bad_request_is_raised_at_once_not_retried(thread_pair, video_prompt):
    before = sum(_count_400(url) for url in thread_pair)
    async with RolloutClient(thread_pair, max_retries=3) as client:
        with pytest.raises(RolloutRequestError, match="temperatur") as failure:
            await client.generate({**payload(video_prompt), "sampling_params": {"temperatur": 1}})
    assert failure.value.status == 400
    assert sum(_count_400(url) for url in thread_pair) - before == 1.0


@pytest.mark.integration
async def test_weight_sync_versions_and_stale_endpoints(thread_pair, video_prompt, tmp_path, tiny_dir):
    new = init_model("tiny", tmp_path / "step-1", seed=1)
    dead = _free_url()
    async with RolloutClient([*thread_pair, dead], retry_backoff_s=0.05, max_retries=4) as client:
        report = await client.update_weights(str(new), "1")
        assert [r.success for r in report] == [True, True, False]
        assert client.stale_endpoints == [dead]
        for _ in range(3):  # the dead (stale) endpoint never gets generation traffic
            completions = await client.generate(payload(video_prompt))
            assert completions[0].weight_version == "1" and completions[0].endpoint in thread_pair
        for url in thread_pair:
            assert (await client.model_info(url))["weight_version"] == "1"

        # an endpoint that drifts to other weights is refused, and re-synced in the background
        drifted = thread_pair[1]
        httpx.post(drifted + "/update_weights_from_disk", json={"model_path": str(tiny_dir), "weight_version": "0"},
                   timeout=60).raise_for_status()
        versions, refused = set(), False
        for _ in range(4):
            completions = await client.generate(payload(video_prompt))
            versions.add(completions[0].weight_version)
            refused |= drifted in client.stale_endpoints
        assert versions == {"1"} and refused
        deadline = time.monotonic() + 30
        while drifted in client.stale_endpoints:
            assert time.monotonic() < deadline, "stale endpoint was not re-synced"
            await client.generate(payload(video_prompt))  # each call starts the due re-syncs
            await asyncio.sleep(0.1)
        assert (await client.model_info(drifted))["weight_version"] == "1"

    with pytest.raises(WeightSyncError, match=dead.split("//")[1]):
        await update_weights([*thread_pair, dead], str(new), "2")
    assert all((httpx.get(url + "/get_weight_version").json()["weight_version"] == "2") for url in thread_pair)
    # leave the pair on the session weights
    await update_weights(thread_pair, str(tiny_dir), "0")


@pytest.mark.integration
async def test_weights_from_an_object_store_uri_are_refused_as_sglang_refuses_them(tiny_dir, thread_server):
    """SGLang 0.5.23's loader takes a local directory (or the hub, offline in a pod): an s3:// path
    is a 400 {"success": false, ...}; the server keeps its weights and stays up."""
    engine = GenerationEngine(load_model(tiny_dir, device="cpu"), load_processor(tiny_dir), model_path=str(tiny_dir))
    with thread_server(create_app(engine)) as server:
        response = httpx.post(server.url + "/update_weights_from_disk",
                              json={"model_path": "s3://checkpoints/run/step-3/hf", "weight_version": "3"})
        assert response.status_code == 400
        body = response.json()
        assert body["success"] is False and "not a local directory" in body["message"] and "num_paused_requests" in body
        async with RolloutClient([server.url]) as client:
            with pytest.raises(WeightSyncError, match="not a local directory"):
                await client.update_weights("s3://checkpoints/run/step-3/hf", "3", require_all=True)
        assert httpx.get(server.url + "/get_weight_version").json()["weight_version"] == "default"


# -- server processes: a hung one and a killed one


@pytest.mark.integration
@pytest.mark.slow
async def test_hung_endpoint_times_out_and_the_request_completes_elsewhere(server_pair, video_prompt):
    hung, healthy = server_pair
    hung.signal(signal.SIGSTOP)
    try:
        async with RolloutClient([hung.url, healthy.url], balance="round_robin", timeout_s=2.0,
                                 connect_timeout_s=1.0, retry_backoff_s=5.0) as client:
            started = time.monotonic()
            (completion,) = await client.generate(payload(video_prompt))
            assert completion.endpoint == healthy.url
            assert 1.5 < time.monotonic() - started < 30
            # the hung endpoint cools down: the next requests go straight to the healthy one
            started = time.monotonic()
            for _ in range(2):
                assert (await client.generate(payload(video_prompt)))[0].endpoint == healthy.url
            assert time.monotonic() - started < 10
    finally:
        hung.signal(signal.SIGCONT)


def _in_flight(url: str) -> float:
    try:
        text = httpx.get(url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    line = next((line for line in text.splitlines() if line.startswith("videop2r_rollout_in_flight ")), "x 0")
    return float(line.split()[-1])


@pytest.mark.integration
@pytest.mark.slow
async def test_endpoint_killed_mid_request_the_request_completes_on_another(server_pair, video_prompt):
    victim, survivor = server_pair
    async with RolloutClient([victim.url, survivor.url], balance="round_robin", timeout_s=120,
                             retry_backoff_s=0.05) as client:
        task = asyncio.create_task(client.generate(payload(video_prompt, max_new_tokens=400)))
        deadline = time.monotonic() + 60
        while await asyncio.to_thread(_in_flight, victim.url) < 1:  # the victim is generating it now
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.01)
        victim.signal(signal.SIGKILL)
        completions = await asyncio.wait_for(task, 300)
    assert completions[0].endpoint == survivor.url
    assert len(completions[0].output_ids) == 400 and completions[0].finish_reason == "length"
    victim.process.wait(10)


def test_serve_rollout_with_a_missing_model_is_a_clear_error_at_start(tmp_path, capsys):
    from videop2r.cli import main

    assert main(["serve", "rollout", "--model", str(tmp_path / "no-model"), "--port", "0"]) == 2
    assert "model path does not exist" in capsys.readouterr().err
