"""An OpenAI-compatible chat-completions client with retries: the eval chat transport, the
perception-sufficiency text endpoint and the CoT teacher all talk through it.

`await client.complete(messages, temperature=..., max_tokens=...)` returns the first choice's
text. Timeouts, dropped connections, 408/409/425/429 and 5xx are retried with exponential
backoff and jitter (a ``Retry-After`` header is honoured); another 4xx is the caller's fault and
raises `ChatRequestError` at once; when every attempt failed, `ChatUnavailable` says why.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx

from videop2r.rewards.judges.openai_judge import chat_completions_url

_RETRYABLE_STATUS = {408, 409, 425, 429}
MAX_BACKOFF_S = 30.0


class ChatError(RuntimeError):
    """Base of chat client errors."""


class ChatRequestError(ChatError):
    """The endpoint refused the request itself (4xx other than the retryable ones)."""


class ChatUnavailable(ChatError):
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
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

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
        errors: list[str] = []
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff(attempt, retry_after))
                retry_after = None
            try:
                response = await self._http.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                errors.append(f"timeout ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            status = response.status_code
            if status in _RETRYABLE_STATUS or status >= 500:
                errors.append(f"HTTP {status}: {response.text[:200]}")
                retry_after = _retry_after(response)
                continue
            if status >= 400:
                raise ChatRequestError(f"{self.url}: HTTP {status}: {response.text[:500]}")
            try:
                data = response.json()
                choice = data["choices"][0]
                text = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                errors.append(f"not a chat completion: {response.text[:200]!r}")
                continue
            usage = data.get("usage") or {}
            return ChatReply(
                text if isinstance(text, str) else "",
                str(choice.get("finish_reason") or "stop"),
                usage.get("completion_tokens"),
            )
        raise ChatUnavailable(f"{self.url}: {len(errors)} attempt(s) failed: {'; '.join(errors)}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_BACKOFF_S)
        return min(self.retry_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S) * random.uniform(0.5, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
