"""The one error hierarchy of the HTTP service boundary (rollout pods, reward services, chat APIs).

- `RequestRefused`: the server refused the request itself (a 4xx other than the retryable ones);
  the caller's fault, so it is raised at once and never retried elsewhere.
- `EndpointUnavailable`: every attempt failed (connection errors, timeouts, 5xx/429, garbled
  answers); `failures` lists each attempt.
- `ProtocolError`: an answer that breaks the service's protocol (a body that does not parse, a
  result from other weights). The endpoint is at fault: the pool counts it as an endpoint failure
  and retries elsewhere, so a caller sees it as one of the `failures` of `EndpointUnavailable`.

Each client subclasses these for its public names (`RolloutRequestError(RequestRefused)`, ...), so
`except RequestRefused` catches a refusal from any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx


class EndpointError(RuntimeError):
    """Base of every failure at the HTTP service boundary."""


class RequestRefused(EndpointError):
    """The server refused the request as malformed or unauthorised (4xx); retrying would not help."""

    def __init__(self, service: str, endpoint: str, status: int, message: str) -> None:
        super().__init__(f"{service} at {endpoint} refused the request: HTTP {status}: {message}")
        self.service = service
        self.endpoint = endpoint
        self.status = status
        self.message = message


class ProtocolError(EndpointError):
    """An answer that breaks the protocol; raised by a client's `accept` to reject it."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt. `kind`: timeout | connection | status | protocol | none (nothing to try)."""

    endpoint: str
    reason: str
    kind: str
    status: int | None = None
    retry_after_s: float | None = None


class EndpointUnavailable(EndpointError):
    """Every attempt failed; `failures` has one entry per attempt, `errors` the (endpoint, reason) pairs."""

    def __init__(self, message: str, failures: Sequence[Failure] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(failure.endpoint, failure.reason) for failure in self.failures]

    @property
    def last(self) -> Failure | None:
        return self.failures[-1] if self.failures else None


def unavailable_message(service: str, failures: Sequence[Failure], what: str = "") -> str:
    count = len(failures)
    detail = "; ".join(f"{failure.endpoint}: {failure.reason}" for failure in failures) or "no endpoints"
    subject = f"{service}: {what}" if what else service
    return f"{subject} failed after {count} attempt{'s' * (count != 1)}: {detail}"


def error_message(response: httpx.Response) -> str:
    """The server's own words from an error body: OpenAI's, SGLang's four shapes, FastAPI's, plain text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(data, dict):
        if isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data))
        if isinstance(data.get("error"), str):  # SGLang's schema gate, the reward services' ErrorBody
            return data["error"]
        return str(data.get("message") or data.get("detail") or data)
    return str(data)[:500]


def retry_after(response: httpx.Response) -> float | None:
    """A ``Retry-After`` header given in seconds (the HTTP-date form is ignored)."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
