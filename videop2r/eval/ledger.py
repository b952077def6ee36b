"""An append-only JSONL file of finished work, keyed by id: what makes eval and CoT runs resumable.

Each finished item is one line, written and fsync'ed before the next is reported done, so a
process killed at any moment leaves every reported line on disk and at most one torn line at
the end. Opening the file again reads it back: the torn tail (no newline, or not JSON) is cut
off, a later line for the same id replaces an earlier one (a retried failure), and the caller
skips the ids it finds.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Ledger:
    """`entries` maps id -> last line written for it. Use as a context manager, or call `close`."""

    def __init__(self, path: str | Path, key: str = "id") -> None:
        self.path = Path(path)
        self.key = key
        self.entries: dict[str, dict[str, Any]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        position = 0
        for raw in data.splitlines(keepends=True):
            position += len(raw)
            if not raw.endswith(b"\n"):
                break  # a torn last line: written partly when the process died
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                log.warning("%s: skipping a line that is not JSON (byte %d)", self.path, position - len(raw))
                good_end = position
                continue
            if isinstance(entry, dict) and self.key in entry:
                self.entries[str(entry[self.key])] = entry
            good_end = position
        if good_end < len(data):
            log.warning(
                "%s: dropping a torn last line (%d bytes) left by an interrupted run",
                self.path,
                len(data) - good_end,
            )
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)

    def __contains__(self, ident: object) -> bool:
        return str(ident) in self.entries

    def get(self, ident: object) -> dict[str, Any] | None:
        return self.entries.get(str(ident))

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: dict[str, Any]) -> None:
        """Write one line durably; the entry must carry the key."""
        ident = str(entry[self.key])
        self._file.write(json.dumps(entry, ensure_ascii=False, default=_jsonable) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries[ident] = entry

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
