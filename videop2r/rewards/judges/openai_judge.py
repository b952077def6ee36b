"""The LLM perception judge (method §5) over any OpenAI-compatible chat-completions endpoint.

SGLang, vLLM, the embedded rollout server or a hosted API: one POST per item, the prompt from
`videop2r/templates/perception_judge.txt`, the verdict parsed from `<judgement>Yes|No</judgement>`.
Anything else is No, flagged `unparseable` so the pipeline counts it.

The call goes through a one-endpoint `videop2r.http.pool.EndpointPool` with no retries of its own:
`JudgePipeline` retries, so the pool only classifies the failure by the project's one policy
(`videop2r.http.retry`): retryable (a timeout, a dropped connection, 408/409/425/429, 5xx) is a
`TransientJudgeError`, anything else (another 4xx, a body that is not a chat completion) a `JudgeError`.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import httpx

from videop2r.http.errors import EndpointUnavailable, ProtocolError, RequestRefused
from videop2r.http.pool import Endpoint, EndpointPool
from videop2r.http.retry import RetryPolicy
from videop2r.rewards.judges.aiohttp_transport import AiohttpTransport
from videop2r.rewards.judges.base import Judge, JudgeError, TransientJudgeError, Verdict
from videop2r.rewards.judges.schema import JudgeItem

if TYPE_CHECKING:
    from videop2r.config import RewardConfig

_JUDGEMENT = re.compile(r"<\s*judge?ment\s*>\s*(yes|no)\s*[.!]?\s*<\s*/\s*judge?ment\s*>", re.IGNORECASE)


@lru_cache(maxsize=1)
def judge_prompt_template() -> str:
    return resources.files("videop2r").joinpath("templates/perception_judge.txt").read_text(encoding="utf-8")


def question_with_options(question: str, options: list[str] | None) -> str:
    """The question as the policy saw it: options appended as `Options:` lines (method §1)."""
    if not options:
        return question
    return question.rstrip() + "\nOptions:\n" + "\n".join(option.strip() for option in options)


def render_judge_prompt(item: JudgeItem) -> str:
    """The judge's user message for one item."""
    return judge_prompt_template().format(
        modality=item.data_type,
        question=question_with_options(item.question, item.options),
        answer=item.answer.strip(),
        observation=item.observation.strip(),
    )


def parse_judgement(text: str) -> Verdict:
    """Yes iff the last `<judgement>` block says Yes; no block at all is an unparseable No."""
    found = _JUDGEMENT.findall(text or "")
    if not found:
        return Verdict(False, "judge reply has no <judgement>Yes|No</judgement>", unparseable=True)
    yes = found[-1].lower() == "yes"
    return Verdict(yes, "judge: yes" if yes else "judge: no")


def chat_completions_url(base: str) -> str:
    """Accept `http://h:p`, `http://h:p/v1` or the full `.../chat/completions` URL."""
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


class OpenAIJudge(Judge):
    """One chat-completions call per item; HTTP failures become (transient) `JudgeError`s."""

    name = "openai"

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = chat_completions_url(url)
        self.model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._max_connections = max_connections
        self._transport = transport  # tests plug an in-process app here
        self._pool: EndpointPool | None = None

    async def start(self) -> None:
        if self._pool is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            # aiohttp on the wire: httpx's own pool is slow with many calls in flight (see aiohttp_transport)
            transport = self._transport or AiohttpTransport(self._max_connections)
            self._pool = EndpointPool([self.url], service="judge", policy=RetryPolicy(max_retries=0, cooldown_s=0.0),
                                      timeout=self._timeout_s, headers=headers, transport=transport)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def judge(self, item: JudgeItem) -> Verdict:
        await self.start()
        assert self._pool is not None
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": render_judge_prompt(item)}],
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
        }
        try:
            content, _ = await self._pool.call("POST", "", body, accept=_reply_content)
        except RequestRefused as exc:
            raise JudgeError(f"judge endpoint answered HTTP {exc.status}: {exc.message[:200]}") from exc
        except EndpointUnavailable as exc:
            raise _judge_error(exc) from exc
        return parse_judgement(content if isinstance(content, str) else "")


def _reply_content(data: Any, endpoint: Endpoint) -> Any:
    try:
        return data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProtocolError(f"{str(data)[:120]!r}") from exc


def _judge_error(exc: EndpointUnavailable) -> JudgeError:
    """The pipeline's error for the (one) failed attempt: transient unless the body was garbled."""
    failure = exc.last
    if failure is None or failure.kind == "protocol":
        reason = failure.reason.removeprefix("bad answer: ") if failure else str(exc)
        return JudgeError(f"judge endpoint answered a body that is not a chat completion: {reason}")
    if failure.kind == "timeout":
        return TransientJudgeError(f"judge call timed out ({failure.reason})")
    if failure.kind == "status":
        return TransientJudgeError(f"judge endpoint answered HTTP {failure.status}", failure.retry_after_s)
    return TransientJudgeError(f"judge endpoint unreachable ({failure.reason})")


def openai_from_config(config: "RewardConfig") -> OpenAIJudge:
    if not config.judge_url:
        from videop2r.config import ConfigError

        raise ConfigError("config error: reward.judge_url: must be set for the openai judge")
    return OpenAIJudge(
        config.judge_url,
        config.judge_model,
        api_key=os.environ.get(config.judge_api_key_env) or None,
        timeout_s=config.timeout_s,
        max_tokens=config.judge_max_tokens,
        temperature=config.judge_temperature,
        max_connections=config.max_in_flight,
    )
