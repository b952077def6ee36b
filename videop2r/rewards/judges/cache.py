"""An LRU of judge verdicts that also merges concurrent calls for the same key.

A group of G rollouts often repeats an observation word for word; the first one is judged and
the others wait for that verdict instead of calling the judge again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class VerdictCache(Generic[V]):
    """`get_or_compute(key, compute)` -> (value, hit).

    Values for which `keep(value)` is false (errors) are handed to waiters but not stored.
    """

    def __init__(self, max_size: int, keep: Callable[[V], bool] = lambda value: True) -> None:
        self.max_size = max_size
        self._keep = keep
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._values)

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key], True
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
            self._values[key] = value
            if len(self._values) > self.max_size:
                self._values.popitem(last=False)
        return value, False
