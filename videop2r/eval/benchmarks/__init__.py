"""Benchmark adapters, one module per benchmark of SPEC §6 plus the synthetic set.

Each reads its benchmark's own release format; `get_benchmark(name)` returns an adapter.
"""

from videop2r.eval.benchmarks.base import (
    PAPER_ORDER,
    BenchmarkAdapter,
    BenchmarkScore,
    benchmark_names,
    get_benchmark,
    register_benchmark,
)

__all__ = [
    "PAPER_ORDER",
    "BenchmarkAdapter",
    "BenchmarkScore",
    "benchmark_names",
    "get_benchmark",
    "register_benchmark",
]
