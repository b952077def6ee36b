"""One bad request cannot hurt the others (issue 16): a request that fails inside a batch fails
alone, a job the engine cannot run is refused before it joins one, a bad weight update changes
nothing, and bodies over the limit are refused before parsing."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from services.rollout.app import create_app
from services.rollout.prompt_job import InvalidJob, PromptJob, SamplingOptions
from services.rollout.scheduler import BatchScheduler

pytestmark = pytest.mark.integration


def _job(text_prompt, **sampling) -> PromptJob:
    return PromptJob(inputs=dict(text_prompt), sampling=SamplingOptions(max_new_tokens=4, **sampling))


@pytest.mark.parametrize("sampling", [
    {"temperature": 1e300}, {"temperature": math.inf}, {"top_p": math.nan},
    {"sampling_seed": 2**70}, {"sampling_seed": -(2**64)},
    {"logit_bias": {5: math.inf}}, {"logit_bias": {5: 1e39}}, {"logit_bias": {10**9: 1.0}},
    {"stop_token_ids": [-1]}, {"stop": ["ok", "\ud800"]},
])
def test_the_engine_refuses_jobs_it_cannot_run_before_they_join_a_batch(engine, text_prompt, sampling):
    async def run() -> int:
        scheduler = BatchScheduler(engine)
        scheduler.start()
        try:
            with pytest.raises(InvalidJob):
                await scheduler.submit([_job(text_prompt, **sampling)])
            return scheduler.batches
        finally:
            await scheduler.stop()

    assert asyncio.run(run()) == 0


def test_a_request_failing_inside_a_batch_fails_alone(engine, text_prompt):
    """The poisoned job passes the checks and breaks the pass (no attention mask: prefill raises);
    the five innocent requests queued with it still get their results, seeded ones unchanged."""
    poisoned = PromptJob(inputs={"input_ids": text_prompt["input_ids"]}, sampling=SamplingOptions(max_new_tokens=4))

    async def run():
        scheduler = BatchScheduler(engine)
        scheduler.start()
        try:
            alone = await scheduler.submit([_job(text_prompt, sampling_seed=3)])
            innocent = [scheduler.submit([_job(text_prompt, sampling_seed=3)]) for _ in range(5)]
            outcomes = await asyncio.gather(*innocent[:2], scheduler.submit([poisoned]), *innocent[2:],
                                            return_exceptions=True)
            return alone, outcomes
        finally:
            await scheduler.stop()

    alone, outcomes = asyncio.run(run())
    failed = outcomes.pop(2)
    assert isinstance(failed, KeyError), failed
    assert all(not isinstance(outcome, BaseException) for outcome in outcomes), outcomes
    assert all(result[0].samples[0].output_ids == alone[0].samples[0].output_ids for result in outcomes)


@pytest.fixture(scope="module")
def url(engine, thread_server):
    with thread_server(create_app(engine, served_model_name="tiny", max_body_bytes=64 * 1024)) as server:
        yield server.url


def _generate(text: str = "Name a colour.", **sampling) -> dict:
    return {"text": text, "sampling_params": {"max_new_tokens": 4, "temperature": 0, **sampling}}


@pytest.mark.parametrize("poison", [{"temperature": 1e300}, {"sampling_seed": 2**70}, {"logit_bias": {"5": 1e39}}])
def test_over_http_innocent_requests_sent_with_a_poisoned_one_complete(url, poison):
    async def fire():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            bodies = [_generate() for _ in range(5)]
            bodies.insert(2, _generate(**poison))
            return await asyncio.gather(*(client.post("/generate", json=body) for body in bodies))

    responses = asyncio.run(fire())
    poisoned = responses.pop(2)
    # a ValueError while processing: SGLang 0.5.23's http_server.py _create_error_response shape
    assert poisoned.status_code == 400 and "message" in poisoned.json()["error"], poisoned.text
    assert [response.status_code for response in responses] == [200] * 5
    assert len({tuple(response.json()["output_ids"]) for response in responses}) == 1


def test_a_weight_update_with_a_bad_version_changes_nothing(url, engine, tiny_dir):
    with httpx.Client(base_url=url, timeout=120) as http:
        before = http.get("/get_model_info").json()
        model = engine.model
        body = b'{"model_path": "%s", "weight_version": "\\ud800"}' % str(tiny_dir).encode()
        response = http.post("/update_weights_from_disk", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["success"] is False, response.text
        assert "weight_version" in response.json()["message"]
        assert engine.model is model  # nothing was loaded, nothing swapped
        too_long = http.post("/update_weights_from_disk", json={"model_path": str(tiny_dir), "weight_version": "v" * 300})
        assert too_long.status_code == 400 and engine.model is model
        assert http.get("/get_model_info").json() == before
        assert http.post("/generate", json=_generate()).status_code == 200


def test_a_body_over_the_limit_is_refused_before_parsing(url):
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/generate", json=_generate("word " * 20_000))
        assert response.status_code == 413 and "65536" in response.json()["message"], response.text
        assert response.json()["object"] == "error"

        def chunks():  # no Content-Length: counted while reading
            for _ in range(100):
                yield b" " * 1000

        chunked = http.post("/generate", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert http.post("/generate", json=_generate()).status_code == 200


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/generate", b'{"text": "hi \\ud800", "sampling_params": {"max_new_tokens": 2}}', "text"),
    ("/generate", b'{"text": "hi", "rid": "\\ud800", "sampling_params": {"max_new_tokens": 2}}', "rid"),
    ("/v1/chat/completions", b'{"model": "tiny", "messages": [{"role": "user", "content": "hi \\ud800"}], "max_tokens": 2}',
     "messages[0].content"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(url, path, body, field):
    with httpx.Client(base_url=url, timeout=120) as http:
        response = http.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()["error"] if path == "/generate" else response.json()
        assert error["message"].startswith(f"{field} is not valid Unicode"), response.text
        assert http.post("/generate", json=_generate()).status_code == 200


def test_a_chat_seed_out_of_range_is_a_400(url):
    with httpx.Client(base_url=url, timeout=120) as http:
        response = http.post("/v1/chat/completions", json={
            "model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "seed": 2**70})
        assert response.status_code == 400 and response.json()["object"] == "error", response.text
        assert "sampling_seed" in response.json()["message"]


def test_a_text_longer_than_any_fit_is_refused_before_tokenizing(engine, thread_server):
    """20 MB of text (no body limit): refused by its length alone, not tokenized for seconds."""
    from services.rollout.body_checks import text_char_limit

    limit = text_char_limit(engine)
    with thread_server(create_app(engine, served_model_name="tiny")) as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        response = http.post("/generate", json=_generate("word " * 4_000_000))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"] == (
            f"text has more than {limit} characters: more tokens than the model's positions")
        # the bound refuses nothing that could fit: a text just under it still reaches the tokenizer
        fits = http.post("/generate", json=_generate("a" * (limit // 2)))
        assert fits.status_code in (200, 400) and "characters" not in fits.text
