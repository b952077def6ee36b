"""An OpenAI-compatible chat-completions client with retries: the eval chat transport, the
perception-sufficiency text endpoint and the CoT teacher all talk through it.

`await client.complete(messages, temperature=..., max_tokens=...)` returns the first choice's
text. The request goes through a one-endpoint `videop2r.http.pool.EndpointPool`, so the retry
policy is the project's one (`videop2r.http.retry`): timeouts, dropped connections, 408/409/425/429,
5xx and answers that are not a chat completion are retried with exponential backoff and jitter
(a ``Retry-After`` header is honoured); another 4xx is the caller's fault and raises
`ChatRequestError` at once; when every attempt failed, `ChatUnavailable` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from videop2r.http.errors import EndpointError, EndpointUnavailable, ProtocolError, RequestRefused
from videop2r.http.pool import Endpoint, EndpointPool
from videop2r.http.retry import RetryPolicy
from videop2r.rewards.judges.openai_judge import chat_completions_url


class ChatError(EndpointError):
    """Base of chat client errors."""


class ChatRequestError(RequestRefused, ChatError):
    """The endpoint refused the request itself (4xx other than the retryable ones)."""


class ChatUnavailable(EndpointUnavailable, ChatError):
    """Every attempt failed (timeouts, connection errors, 429, 5xx, garbled answers)."""


@dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str
    completion_tokens: int | None = None


class ChatClient:
    """POST ``<url>/v1/chat/completions``; `url` may be ``http://h:p``, ``.../v1`` or the full path."""

    def __init__(
        self,
        url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        retry_backoff_s: float = 1.0,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url:
            raise ValueError("ChatClient needs an endpoint URL")
        self.url = chat_completions_url(url)
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        policy = RetryPolicy(max_retries=max_retries, backoff_s=retry_backoff_s, cooldown_s=0.0)
        self._pool = EndpointPool(
            [self.url], service="chat", policy=policy, timeout=httpx.Timeout(timeout_s, connect=10.0),
            headers=headers, limits=httpx.Limits(max_connections=max_connections), transport=transport,
            refused=ChatRequestError, unavailable=ChatUnavailable,
        )

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float,
        max_tokens: int,
        top_p: float | None = None,
        **extra: Any,
    ) -> ChatReply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            **extra,
        }
        if top_p is not None:
            body["top_p"] = top_p
        reply, _ = await self._pool.call("POST", "", body, accept=_chat_reply)
        return reply


def _chat_reply(data: Any, endpoint: Endpoint) -> ChatReply:
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProtocolError(f"not a chat completion: {str(data)[:200]!r}") from exc
    usage = data.get("usage") or {}
    return ChatReply(
        text if isinstance(text, str) else "",
        str(choice.get("finish_reason") or "stop"),
        usage.get("completion_tokens"),
    )
