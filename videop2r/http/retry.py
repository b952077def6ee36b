"""The one retry policy of the HTTP clients: which answers are worth another attempt, and how long
to wait before one.

Retryable, as the OpenAI Python SDK treats them: a connection error, a timeout, 408 (request
timeout), 409 (conflict, a lock), 429 (rate limited) and every 5xx; plus 425 (too early, which
RFC 8470 says a client may retry). Any other 4xx is the caller's and is raised at once.

Backoff is exponential with jitter, ``min(backoff_s * 2**(retry - 1), max_backoff_s)`` times a
factor in [0.5, 1), and a server's ``Retry-After`` (capped at `max_backoff_s`) replaces it. The pool
waits only before going back to an endpoint it already tried in this call: failing over to
another endpoint is immediate. An endpoint that failed is cooled down for
``min(cooldown_s * 2**(failures - 1), max_cooldown_s)`` (at least its ``Retry-After``), so it
gets no traffic while others can answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MAX_BACKOFF_S = 30.0


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` attempts after the first; delays as in the module docstring."""

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = MAX_BACKOFF_S
    cooldown_s: float = 0.5
    max_cooldown_s: float = MAX_BACKOFF_S

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 = the first retry)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_backoff_s)
        return self.backoff(retry) * random.uniform(0.5, 1.0)

    def backoff(self, retry: int) -> float:
        """The exponential backoff of retry number `retry`, without jitter."""
        return min(self.backoff_s * 2 ** max(retry - 1, 0), self.max_backoff_s)

    def cooldown(self, failures: int, retry_after_s: float | None = None) -> float:
        """How long an endpoint with `failures` failures in a row gets no traffic."""
        cooldown = min(self.cooldown_s * 2 ** max(failures - 1, 0), self.max_cooldown_s)
        if retry_after_s is not None:
            cooldown = max(cooldown, min(retry_after_s, self.max_cooldown_s))
        return cooldown
