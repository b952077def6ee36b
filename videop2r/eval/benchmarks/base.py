"""The adapter interface, the registry of benchmarks by name, and the default aggregation.

An adapter reads one benchmark's own release (`items`) and turns per-item scores into the
benchmark's number (`aggregate`). Registering a second, different adapter under a taken name
is an error (verl's registry convention).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from videop2r.eval.items import BadRow, EvalItem
from videop2r.eval.source import BenchmarkSource, UnreadableRow


@dataclass
class BenchmarkScore:
    """A benchmark's number in [0, 1] and its breakdowns ({group key: {value: score}})."""

    score: float
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)


class BenchmarkAdapter(ABC):
    """One benchmark. `name` is the CLI name, `title` its column in the summary table."""

    name: str = ""
    title: str = ""
    #: other names accepted on the command line
    aliases: tuple[str, ...] = ()
    #: a column of the paper's Table 1 (method §6); the synthetic set is not
    paper_column: bool = True

    @abstractmethod
    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        """Every question of the release, in file order; raises `AnnotationError` if none can be read."""

    def aggregate(self, results: Sequence[Mapping[str, Any]]) -> BenchmarkScore:
        """Default: the mean item score, with a mean per value of every group key."""
        return BenchmarkScore(mean_score(results), group_means(results))

    # -- helpers for adapters

    def bad(self, row_id: str, reason: str, message: str, metric: str = "accuracy", **groups: str) -> BadRow:
        return BadRow(self.name, row_id, reason, message, {k: v for k, v in groups.items() if v}, metric)

    def make_item(self, location: str, row_id: str | None, **fields: Any) -> EvalItem | BadRow:
        """An EvalItem, or a BadRow naming the first field that did not validate."""
        try:
            return EvalItem(benchmark=self.name, id=str(row_id), **fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"]) or "row"
            return self.bad(row_id or f"row:{location}", "invalid_row", f"{location}: {where}: {err['msg']}")

    def guarded(self, location: str, build: Callable[[], EvalItem | BadRow]) -> EvalItem | BadRow:
        """`build()`, or a BadRow when the row trips it up in a way its checks did not foresee."""
        try:
            return build()
        except Exception as exc:  # noqa: BLE001 - one odd row costs one item, not the benchmark
            return self.bad(f"row:{location}", "invalid_row", f"{location}: {type(exc).__name__}: {exc}")

    def unreadable(self, location: str, row: Any) -> BadRow | None:
        """A BadRow for a row that is not a JSON object, else None."""
        if isinstance(row, UnreadableRow):
            return self.bad(f"row:{location}", "unreadable_row", f"{location}: {row.message}")
        if not isinstance(row, dict):
            return self.bad(
                f"row:{location}",
                "unreadable_row",
                f"{location}: expected an object, got {type(row).__name__}",
            )
        return None


def mean_score(results: Sequence[Mapping[str, Any]]) -> float:
    return sum(float(r.get("score", 0.0)) for r in results) / len(results) if results else 0.0


def group_means(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    by_key: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        for key, value in (result.get("groups") or {}).items():
            by_key[key][str(value)].append(float(result.get("score", 0.0)))
    return {
        key: {value: sum(s) / len(s) for value, s in sorted(values.items())}
        for key, values in sorted(by_key.items())
    }


def dedupe(items: Iterator[EvalItem | BadRow]) -> Iterator[EvalItem | BadRow]:
    """Pass items through; a second item with an id already seen becomes a `duplicate_id` BadRow."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            yield BadRow(
                item.benchmark, f"{item.id}#dup{len(seen)}", "duplicate_id", f"id {item.id!r} appears twice"
            )
            continue
        seen.add(item.id)
        yield item


# The column order of method §6 Table 1.
PAPER_ORDER = ("vsibench", "videommmu", "mmvu", "vcrbench", "mvbench", "tempcompass", "videomme")
