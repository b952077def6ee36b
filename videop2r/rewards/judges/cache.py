"""An LRU of judge verdicts that also merges concurrent calls for the same key.

A group of G rollouts often repeats an observation word for word; the first one is judged and
the others wait for that verdict instead of calling the judge again. The cache is bounded in
entries and in bytes (`weigh(value)` plus `KEY_BYTES` per entry); callers key it by a digest,
so an entry's size does not depend on the observation's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
# what one entry costs besides its value: a 32-byte digest key, the dict and LRU bookkeeping
KEY_BYTES = 200


class VerdictCache(Generic[V]):
    """`get_or_compute(key, compute)` -> (value, hit).

    Values for which `keep(value)` is false (errors) are handed to waiters but not stored.
    """

    def __init__(self, max_size: int, keep: Callable[[V], bool] = lambda value: True,
                 max_bytes: int | None = None, weigh: Callable[[V], int] = lambda value: 0) -> None:
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._keep = keep
        self._weigh = weigh
        self._values: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._values)

    def _store(self, key: Hashable, value: V) -> None:
        size = KEY_BYTES + self._weigh(value)
        if self.max_bytes is not None and size > self.max_bytes:
            return
        self._values[key] = (value, size)
        self.bytes += size
        while len(self._values) > self.max_size or (self.max_bytes is not None and self.bytes > self.max_bytes):
            _, (_, dropped) = self._values.popitem(last=False)
            self.bytes -= dropped

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key][0], True
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        if self.max_size > 0 and self._keep(value):
            previous = self._values.pop(key, None)
            if previous is not None:
                self.bytes -= previous[1]
            self._store(key, value)
        return value, False
