"""The one list of Prometheus metrics this project exports.

Dashboards (`infra/dashboards/`), alert rules (`infra/prometheus/`) and the chart read their
metric names from `CATALOG` (tests check that every name they use is declared here), and the
code gets its collectors with `metric(name)`. Per-process rewards are first-class: one gauge
with `process` (perception|reasoning) and `component` (accuracy|format|length|total) labels.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

PROCESSES = ("perception", "reasoning")
REWARD_COMPONENTS = ("accuracy", "format", "length", "total")
JUDGE_VERDICTS = ("yes", "no", "refused", "error")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()


CATALOG: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        # -- training driver
        MetricSpec("videop2r_train_step", "gauge", "Last completed training step", ("run", "stage")),
        MetricSpec("videop2r_train_phase_seconds", "histogram", "Wall time per step phase", ("run", "phase")),
        MetricSpec("videop2r_reward", "gauge", "Mean reward component of the last step",
                   ("run", "process", "component")),
        MetricSpec("videop2r_advantage_mean", "gauge", "Mean advantage over the process tokens", ("run", "process")),
        MetricSpec("videop2r_advantage_abs_mean", "gauge", "Mean |advantage| over the process tokens",
                   ("run", "process")),
        MetricSpec("videop2r_advantage_collapse_fraction", "gauge",
                   "Fraction of groups whose reward std is zero (zero advantage)", ("run", "process")),
        MetricSpec("videop2r_kl", "gauge", "KL(policy || reference), k3 estimate, token mean", ("run",)),
        MetricSpec("videop2r_entropy", "gauge", "Policy entropy, token mean", ("run",)),
        MetricSpec("videop2r_policy_loss", "gauge", "Policy loss of the last update", ("run",)),
        MetricSpec("videop2r_segment_length_tokens", "gauge", "Mean segment length in tokens", ("run", "process")),
        MetricSpec("videop2r_think_answer_mismatch_rate", "gauge",
                   "Fraction of rollouts whose answer contradicts the conclusion of the think part", ("run",)),
        MetricSpec("videop2r_rollout_tokens_per_second", "gauge", "Generated tokens per second, last step", ("run",)),
        MetricSpec("videop2r_rollout_endpoint_weight_version", "gauge",
                   "Weight version each rollout endpoint last reported to the driver (-1 = unknown)",
                   ("run", "endpoint")),
        MetricSpec("videop2r_rollout_endpoint_in_rotation", "gauge",
                   "1 while the driver sends a rollout endpoint traffic, 0 while it is out of rotation "
                   "(a failed weight sync, until it reports the new version)", ("run", "endpoint")),
        MetricSpec("videop2r_rollout_logprob_abs_diff", "gauge",
                   "Mean |rollout log p - learner log p| over the response tokens of the last step", ("run",)),
        MetricSpec("videop2r_rollout_logprob_kl", "gauge",
                   "k3 estimate of KL(rollout || learner) over the response tokens of the last step", ("run",)),
        MetricSpec("videop2r_eval_accuracy", "gauge", "Held-out accuracy", ("run", "split", "metric")),
        MetricSpec("videop2r_samples_skipped_total", "counter", "Samples skipped (bad record, bad media, ...)",
                   ("reason",)),
        MetricSpec("videop2r_storage_retries_total", "counter",
                   "Object-store operations retried after a transient error", ("backend", "operation")),
        MetricSpec("videop2r_endpoint_failures_total", "counter", "Calls to a dead or failing endpoint",
                   ("service", "endpoint")),
        # -- reward services
        MetricSpec("videop2r_reward_requests_total", "counter", "HTTP requests to a reward service",
                   ("service", "status")),
        MetricSpec("videop2r_reward_request_seconds", "histogram", "Reward service request latency", ("service",)),
        MetricSpec("videop2r_reward_items_total", "counter", "Items scored or judged", ("service",)),
        MetricSpec("videop2r_judge_verdicts_total", "counter", "Perception judge verdicts", ("judge", "verdict")),
        MetricSpec("videop2r_judge_call_seconds", "histogram", "Latency of one judge backend call", ("judge",)),
        MetricSpec("videop2r_judge_cache_hits_total", "counter", "Judge verdicts served from cache", ("judge",)),
        MetricSpec("videop2r_judge_cache_misses_total", "counter", "Judge verdicts not in cache", ("judge",)),
        MetricSpec("videop2r_judge_in_flight", "gauge", "Judge backend calls in flight", ("judge",)),
        MetricSpec("videop2r_judge_retries_total", "counter",
                   "Judge backend calls retried after a timeout, 429 or 5xx", ("judge",)),
        MetricSpec("videop2r_judge_unparseable_total", "counter",
                   "Judge replies without a readable <judgement>, scored No", ("judge",)),
        MetricSpec("videop2r_judge_refusals_total", "counter",
                   "Observations refused by the hack guard, by rule", ("judge", "rule")),
        MetricSpec("videop2r_reward_in_flight", "gauge", "Requests a reward service is working on", ("service",)),
        # -- rollout
        MetricSpec("videop2r_rollout_requests_total", "counter", "Generate requests", ("status",)),
        MetricSpec("videop2r_rollout_request_seconds", "histogram", "Generate request latency", ()),
        MetricSpec("videop2r_rollout_generated_tokens_total", "counter", "Tokens generated", ()),
        MetricSpec("videop2r_rollout_in_flight", "gauge", "Generate requests in flight", ()),
        MetricSpec("videop2r_rollout_weight_version", "gauge", "Weight version the server generates with", ()),
        # -- evaluation and the CoT data pipeline
        MetricSpec("videop2r_eval_items_total", "counter",
                   "Benchmark items finished, by outcome (ok, no_answer, bad_row, missing_media, ...)",
                   ("benchmark", "status")),
        MetricSpec("videop2r_cot_records_total", "counter",
                   "CoT pipeline records through a step, by outcome", ("step", "outcome")),
    )
}

#: Series the SGLang rollout pods export themselves (``--enable-metrics``), which the rollout
#: dashboard reads for SGLang pods: name -> where SGLang 0.5.23 defines it
#: (``python/sglang/srt/observability/metrics_collector.py``; tests/k8s checks the wheel's source).
SGLANG_SERIES: dict[str, str] = {
    "sglang:num_running_reqs": "metrics_collector.py:364 Gauge",
    "sglang:num_queue_reqs": "metrics_collector.py:370 Gauge",
    "sglang:token_usage": "metrics_collector.py:404 Gauge",
    "sglang:generation_tokens_total": "metrics_collector.py:1860 Counter",
    "sglang:num_requests_total": "metrics_collector.py:1940 Counter",
    "sglang:e2e_request_latency_seconds_bucket": "metrics_collector.py:2067 Histogram",
}

_lock = threading.Lock()
# Keyed by the registry object itself (weakly): keying by id() handed a collector of a dead
# registry to a new one that happened to get the same id.
_created: "weakref.WeakKeyDictionary[CollectorRegistry, dict[str, object]]" = weakref.WeakKeyDictionary()


def metric(name: str, registry: CollectorRegistry | None = None):
    """The collector for a catalogued metric, created once per registry."""
    spec = CATALOG.get(name)
    if spec is None:
        raise KeyError(f"metric {name!r} is not in videop2r.metrics.CATALOG")
    registry = registry or REGISTRY
    with _lock:
        of_registry = _created.setdefault(registry, {})
        found = of_registry.get(name)
        if found is None:
            metric_name = name[: -len("_total")] if spec.kind == "counter" else name
            if spec.kind == "counter":
                found = Counter(metric_name, spec.help, spec.labels, registry=registry)
            elif spec.kind == "gauge":
                found = Gauge(metric_name, spec.help, spec.labels, registry=registry)
            else:
                found = Histogram(metric_name, spec.help, spec.labels, registry=registry, buckets=LATENCY_BUCKETS)
            of_registry[name] = found
        return found


def exported_series(spec: MetricSpec) -> tuple[str, ...]:
    """The series names Prometheus sees for a metric (histograms have three)."""
    if spec.kind == "histogram":
        return (f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count")
    return (spec.name,)
