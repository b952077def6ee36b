"""The OpenAI-compatible judge: prompt, request, verdict parsing, HTTP failures as (transient) errors."""

from __future__ import annotations

import json

import httpx
import pytest

from services.reward.scripted_judge import create_scripted_judge_app
from videop2r.config import ConfigError, load_config
from videop2r.rewards.judges import JudgeError, JudgeItem, JudgePipeline, TransientJudgeError, build_judge
from videop2r.rewards.judges.openai_judge import (
    OpenAIJudge,
    chat_completions_url,
    judge_prompt_template,
    parse_judgement,
    render_judge_prompt,
)

ITEM = JudgeItem(id="q1", question="What colour is the car?", options=["A. red", "B. blue"], answer="B",
                 observation="The car parked by the curb is blue.", data_type="image")


@pytest.mark.parametrize(
    ("reply", "sufficient", "unparseable"),
    [
        ("Reasoning... <judgement>Yes</judgement>", True, False),
        ("<judgement>No</judgement>", False, False),
        ("<judgement> yes </judgement>", True, False),
        ("<JUDGEMENT>YES</JUDGEMENT>", True, False),
        ("<judgment>Yes.</judgment>", True, False),
        ("First <judgement>No</judgement>, on reflection <judgement>Yes</judgement>", True, False),
        ("Yes", False, True),
        ("<judgement>Maybe</judgement>", False, True),
        ("<judgement>Yes", False, True),
        ("", False, True),
    ],
)
def test_parse_judgement(reply: str, sufficient: bool, unparseable: bool) -> None:
    verdict = parse_judgement(reply)
    assert (verdict.sufficient, verdict.unparseable) == (sufficient, unparseable)


def test_prompt_follows_spec_section_5() -> None:
    prompt = render_judge_prompt(ITEM)
    assert "What colour is the car?\nOptions:\nA. red\nB. blue" in prompt
    assert "Correct answer:\nB" in prompt
    assert "<<<OBSERVATION\nThe car parked by the curb is blue.\nOBSERVATION>>>" in prompt
    assert "image" in prompt and "video" not in prompt
    assert "<judgement>Yes</judgement>" in prompt and "<judgement>No</judgement>" in prompt
    assert "strictly from the observation" in prompt
    assert "{" not in prompt  # every placeholder filled
    assert judge_prompt_template().count("{observation}") == 1


def test_prompt_keeps_braces_in_user_text() -> None:
    prompt = render_judge_prompt(ITEM.model_copy(update={"observation": "a {weird} {0} text"}))
    assert "a {weird} {0} text" in prompt


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://h:1", "http://h:1/v1/chat/completions"),
        ("http://h:1/", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1", "http://h:1/v1/chat/completions"),
        ("https://api.x/v1/chat/completions", "https://api.x/v1/chat/completions"),
    ],
)
def test_chat_completions_url(base: str, url: str) -> None:
    assert chat_completions_url(base) == url


async def test_request_carries_model_prompt_and_api_key() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        content = "The observation states the colour. <judgement>Yes</judgement>"
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})

    judge = OpenAIJudge("http://judge:9/v1", "claude-like", api_key="sk-test", max_tokens=77,
                        transport=httpx.MockTransport(reply))
    verdict = await judge.judge(ITEM)
    await judge.close()
    assert verdict.sufficient
    [request] = seen
    assert str(request.url) == "http://judge:9/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "claude-like" and body["temperature"] == 0.0 and body["max_tokens"] == 77
    assert body["messages"] == [{"role": "user", "content": render_judge_prompt(ITEM)}]


def test_api_key_comes_from_the_env_var_named_by_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-from-env")
    overrides = ["reward.judge_url=http://j:1", "reward.judge_api_key_env=MY_JUDGE_KEY"]
    config = load_config(overrides=overrides).reward
    judge = build_judge(config, "openai")
    assert isinstance(judge, OpenAIJudge) and judge._api_key == "sk-from-env"
    monkeypatch.delenv("MY_JUDGE_KEY")
    assert build_judge(config, "openai")._api_key is None


def test_openai_judge_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="reward.judge_url"):
        build_judge(load_config().reward, "openai")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(500, text="boom"), TransientJudgeError),
        (httpx.Response(503, text="busy"), TransientJudgeError),
        (httpx.Response(429, headers={"Retry-After": "2"}, text="slow"), TransientJudgeError),
        (httpx.Response(400, text="bad model"), JudgeError),
        (httpx.Response(401, text="no key"), JudgeError),
        (httpx.Response(200, text="<html>"), JudgeError),
        (httpx.Response(200, json={"choices": []}), JudgeError),
    ],
)
async def test_http_failures_map_to_judge_errors(response: httpx.Response, error: type) -> None:
    judge = OpenAIJudge("http://judge:9", "m", transport=httpx.MockTransport(lambda request: response))
    with pytest.raises(error) as raised:
        await judge.judge(ITEM)
    if response.status_code == 429:
        assert raised.value.retry_after_s == 2.0
    if response.status_code >= 500 or response.status_code == 429:
        assert type(raised.value) is TransientJudgeError


async def test_connection_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    judge = OpenAIJudge("http://judge:9", "m", transport=httpx.MockTransport(refuse))
    with pytest.raises(TransientJudgeError, match="unreachable"):
        await judge.judge(ITEM)


async def test_pipeline_against_the_scripted_judge_app() -> None:
    app = create_scripted_judge_app(latency_s=0.0, flaky_failures=1)
    judge = OpenAIJudge("http://scripted", "m", transport=httpx.ASGITransport(app=app))
    pipeline = JudgePipeline(judge, max_retries=2, retry_backoff_s=0.01, timeout_s=5)
    observations = ["The car is blue.", "The car is blue. #no", "#flaky blue", "#ramble blue", "#500 blue"]
    results = await pipeline.judge_batch([ITEM.model_copy(update={"id": i, "observation": o})
                                          for i, o in enumerate(observations)])
    assert [(r.sufficient, r.error) for r in results] == [
        (True, False), (False, False), (True, False), (False, False), (False, True)]
    assert "no <judgement>" in results[3].reason
    await pipeline.close()
