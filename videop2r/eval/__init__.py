"""Evaluation on the paper's seven benchmarks (method §6) plus the synthetic set.

Public API:

- ``run_eval(EvalRequest, config) -> EvalOutcome`` (label, reports, summary path) — the `videop2r eval` command:
  resumable per-item JSONL ``<output>/<benchmark>.jsonl``, ``summary.md`` (method §6 Table 1's row,
  diagnostics, breakdowns, failures) and ``summary.json``.
- ``get_benchmark(name)`` / ``benchmark_names()`` — adapters that read each benchmark's own
  release (``videop2r.eval.benchmarks``); ``BenchmarkSource.open(uri)`` — a release folder,
  local or ``s3://``.
- ``BenchmarkRunner`` — one benchmark against one `Policy` (``GenerateTransport`` over SGLang's
  ``/generate``, ``ChatTransport`` over ``/v1/chat/completions``).
- ``score_item(item, response)`` — the benchmark metric and the process diagnostics of a response.
- ``Ledger`` — the append-only, kill-safe JSONL that makes eval and the CoT pipeline resumable.

Details and the command line: ``videop2r/eval/README.md``.
"""

from videop2r.eval.benchmarks import BenchmarkAdapter, BenchmarkScore, benchmark_names, get_benchmark
from videop2r.eval.items import BadRow, EvalItem, MediaRef
from videop2r.eval.ledger import Ledger
from videop2r.eval.policy import ChatTransport, GenerateTransport, Policy, RequestFailed, RequestRejected
from videop2r.eval.runner import BenchmarkReport, BenchmarkRunner, EndpointDown
from videop2r.eval.scoring import ItemScore, score_item
from videop2r.eval.session import EvalOutcome, EvalRequest, run_eval
from videop2r.eval.source import AnnotationError, BenchmarkSource

__all__ = [
    "AnnotationError",
    "BadRow",
    "BenchmarkAdapter",
    "BenchmarkReport",
    "BenchmarkRunner",
    "BenchmarkScore",
    "BenchmarkSource",
    "ChatTransport",
    "EndpointDown",
    "EvalItem",
    "EvalOutcome",
    "EvalRequest",
    "GenerateTransport",
    "ItemScore",
    "Ledger",
    "MediaRef",
    "Policy",
    "RequestFailed",
    "RequestRejected",
    "benchmark_names",
    "get_benchmark",
    "run_eval",
    "score_item",
]
