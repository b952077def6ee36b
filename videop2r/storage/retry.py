"""Retries with exponential backoff for object-store calls that fail transiently.

A transient error is one where the same request may succeed a moment later: a refused or reset
connection, a timeout, an HTTP 5xx/429, S3 "SlowDown"/"InternalError". Everything else
(access denied, no such key, a bad request) fails at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from videop2r.metrics import metric
from videop2r.storage.base import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` extra attempts; the n-th wait is backoff_s·2ⁿ (±25 % jitter), capped."""

    max_retries: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        base = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return base * random.uniform(0.75, 1.25)

    def call(
        self,
        fn: Callable[[], T],
        *,
        is_transient: Callable[[BaseException], bool],
        backend: str,
        operation: str,
        what: str,
    ) -> T:
        """Run `fn`, retrying transient errors; raise `StorageError` once the attempts are spent.

        Errors that are not transient propagate unchanged (the backend maps them)."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_transient(exc):
                    raise
                if attempt >= self.max_retries:
                    raise StorageError(
                        f"{operation} {what}: failed after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                    ) from exc
                wait = self.delay(attempt)
                log.warning("%s %s: transient %s (%s), retry %d/%d in %.2fs", operation, what,
                            type(exc).__name__, exc, attempt + 1, self.max_retries, wait)
                metric("videop2r_storage_retries_total").labels(backend=backend, operation=operation).inc()
                time.sleep(wait)
                attempt += 1
