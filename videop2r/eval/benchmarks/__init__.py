"""Benchmark adapters, one module per benchmark of method §6 plus the synthetic set.

Each reads its benchmark's own release format; `get_benchmark(name)` returns an adapter. The
registry is this explicit tuple (no import-to-register), so the adapters import `base` and nothing
imports them back.
"""

from videop2r.eval.benchmarks.base import PAPER_ORDER, BenchmarkAdapter, BenchmarkScore
from videop2r.eval.benchmarks.mmvu import MMVU
from videop2r.eval.benchmarks.mvbench import MVBench
from videop2r.eval.benchmarks.synthetic import Synthetic
from videop2r.eval.benchmarks.tempcompass import TempCompass
from videop2r.eval.benchmarks.vcrbench import VCRBench
from videop2r.eval.benchmarks.videomme import VideoMME
from videop2r.eval.benchmarks.videommmu import VideoMMMU
from videop2r.eval.benchmarks.vsibench import VSIBench

ADAPTERS: tuple[type[BenchmarkAdapter], ...] = (
    VSIBench, VideoMMMU, MMVU, VCRBench, MVBench, TempCompass, VideoMME, Synthetic,
)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _build_registry() -> dict[str, type[BenchmarkAdapter]]:
    registry: dict[str, type[BenchmarkAdapter]] = {}
    for cls in ADAPTERS:
        for key in map(_key, (cls.name, *cls.aliases)):
            taken = registry.get(key)
            if taken is not None and taken is not cls:
                raise ValueError(f"benchmark {key!r} is registered to both {taken.__qualname__} and {cls.__qualname__}")
            registry[key] = cls
    return registry


_REGISTRY = _build_registry()


def get_benchmark(name: str) -> BenchmarkAdapter:
    """The adapter for `name` (case, spaces, '-' and '_' ignored: "VSI-Bench" == "vsibench")."""
    cls = _REGISTRY.get(_key(name))
    if cls is None:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}")
    return cls()


def benchmark_names() -> list[str]:
    """Canonical names, paper order first (Table 1), then the synthetic set."""
    return [
        cls.name
        for cls in sorted(
            ADAPTERS,
            key=lambda c: (not c.paper_column, PAPER_ORDER.index(c.name) if c.name in PAPER_ORDER else 99),
        )
    ]


__all__ = ["ADAPTERS", "PAPER_ORDER", "BenchmarkAdapter", "BenchmarkScore", "benchmark_names", "get_benchmark"]
