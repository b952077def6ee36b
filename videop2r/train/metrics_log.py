"""Where the driver's per-step numbers go: `metrics.jsonl`, Prometheus `/metrics`, the trackers of `trainer.loggers`.

A step's numbers are one flat dict with '/'-separated names (EasyR1 style):

    reward/<process>/<component>     process ∈ perception|reasoning, component ∈ accuracy|format|length|total
    advantage/<process>/mean|abs_mean, collapse/<process>, length/<process>
    actor/kl, actor/entropy, actor/policy_loss, rollout/mismatch_rate, rollout/tokens_per_s
    rollout/logprob_abs_diff, rollout/logprob_kl   rollout-vs-learner gap on the same tokens
    time/<phase>                     seconds spent in a phase of the step
    eval/<metric>                    held-out evaluation (reasoning_accuracy, perception_sufficiency, format)

Every name above maps to one catalogued Prometheus metric (videop2r.metrics.CATALOG), and the
experiment trackers (TensorBoard, W&B, MLflow) get it under that metric's name (`catalog_name`);
other names go to Prometheus never and to the trackers as they are.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from videop2r.metrics import CATALOG, PROCESSES, REWARD_COMPONENTS, metric

log = logging.getLogger(__name__)


def _gauge_target(name: str) -> tuple[str, dict[str, str]] | None:
    """(catalogued metric, extra labels) for a step-dict name, or None when not exported."""
    parts = name.split("/")
    if parts[0] == "reward" and len(parts) == 3 and parts[1] in PROCESSES and parts[2] in REWARD_COMPONENTS:
        return "videop2r_reward", {"process": parts[1], "component": parts[2]}
    if parts[0] == "advantage" and len(parts) == 3 and parts[1] in PROCESSES:
        kind = {"mean": "videop2r_advantage_mean", "abs_mean": "videop2r_advantage_abs_mean"}.get(parts[2])
        return (kind, {"process": parts[1]}) if kind else None
    if parts[0] == "collapse" and len(parts) == 2 and parts[1] in PROCESSES:
        return "videop2r_advantage_collapse_fraction", {"process": parts[1]}
    if parts[0] == "length" and len(parts) == 2 and parts[1] in PROCESSES:
        return "videop2r_segment_length_tokens", {"process": parts[1]}
    if parts[0] == "eval" and len(parts) == 2 and parts[1] != "seconds":  # a duration is no accuracy
        return "videop2r_eval_accuracy", {"split": "heldout", "metric": parts[1]}
    simple = {
        "actor/kl": "videop2r_kl",
        "actor/entropy": "videop2r_entropy",
        "actor/policy_loss": "videop2r_policy_loss",
        "rollout/mismatch_rate": "videop2r_think_answer_mismatch_rate",
        "rollout/tokens_per_s": "videop2r_rollout_tokens_per_second",
        "rollout/logprob_abs_diff": "videop2r_rollout_logprob_abs_diff",
        "rollout/logprob_kl": "videop2r_rollout_logprob_kl",
    }
    if name in simple:
        return simple[name], {}
    return None


def catalog_name(name: str) -> str:
    """The name a step-dict entry has in the experiment trackers: its Prometheus metric and label
    values, e.g. reward/perception/accuracy -> videop2r_reward/perception/accuracy, time/update ->
    videop2r_train_phase_seconds/update; a name outside the catalogue keeps its own."""
    if name.startswith("time/"):
        return f"videop2r_train_phase_seconds/{name.split('/', 1)[1]}"
    target = _gauge_target(name)
    if target is None:
        return name
    metric_name, labels = target
    return "/".join([metric_name, *(labels[label] for label in CATALOG[metric_name].labels if label in labels)])


class MetricsLog:
    """Appends one JSON line per logged step and fans the numbers out to Prometheus and the trackers.

    `loggers` are those of `trainer.loggers`: "jsonl" is metrics.jsonl (written here; the report and
    resume read it, with the step-dict names), the others are experiment trackers
    (`videop2r.train.tracking`, one tracker run per stage, with `catalog_name` names and `config`
    attached). `history` holds every row written (or restored from a checkpoint), so a resumed run
    rewrites `metrics.jsonl` without the rows of steps it is about to redo.
    """

    def __init__(
        self,
        run_dir: str | Path,
        run_name: str,
        *,
        loggers: Iterable[str] = ("jsonl",),
        stage: str = "",
        project: str = "videop2r",
        config: dict[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        from videop2r.train.tracking import Trackers

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_name = run_name
        self.path = self.run_dir / "metrics.jsonl"
        loggers = list(loggers)
        self.jsonl = "jsonl" in loggers
        self.registry = registry or REGISTRY
        self.history: list[dict[str, Any]] = []
        self.trackers = Trackers(loggers, run_dir=self.run_dir, project=project, run_name=run_name,
                                 stage=stage or "run", config=config)

    def restore(self, history: Iterable[dict[str, Any]]) -> None:
        """Replace the history (from a checkpoint) and rewrite metrics.jsonl to match it."""
        self.history = [dict(row) for row in history]
        if self.jsonl:
            tmp = self.path.with_name(".metrics.jsonl.part")
            with open(tmp, "w") as out:
                for row in self.history:
                    out.write(json.dumps(row, sort_keys=True) + "\n")
            tmp.replace(self.path)

    def log(self, stage: str, step: int, values: dict[str, float]) -> dict[str, Any]:
        """Record the numbers of `step` of `stage` (sft|pa_grpo|eval) everywhere they go."""
        clean = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        row: dict[str, Any] = {"stage": stage, "step": step, **clean}
        self.history.append(row)
        if self.jsonl:
            with open(self.path, "a") as out:
                out.write(json.dumps(row, sort_keys=True) + "\n")
                out.flush()
                os.fsync(out.fileno())
        self._export(stage, step, clean)
        return row

    def _export(self, stage: str, step: int, values: dict[str, float]) -> None:
        metric("videop2r_train_step", self.registry).labels(run=self.run_name, stage=stage).set(step)
        for name, value in values.items():
            if name.startswith("time/"):
                metric("videop2r_train_phase_seconds", self.registry).labels(
                    run=self.run_name, phase=name.split("/", 1)[1]
                ).observe(value)
                continue
            target = _gauge_target(name)
            if target is not None:
                metric(target[0], self.registry).labels(run=self.run_name, **target[1]).set(value)
        self.trackers.log(step, {catalog_name(name): value for name, value in values.items()})

    def count_skip(self, reason: str, n: int = 1) -> None:
        metric("videop2r_samples_skipped_total", self.registry).labels(reason=reason).inc(n)

    def count_endpoint_failure(self, service: str, endpoint: str) -> None:
        metric("videop2r_endpoint_failures_total", self.registry).labels(service=service, endpoint=endpoint).inc()

    def close(self) -> None:
        self.trackers.close()


def counter_total(name: str, registry: CollectorRegistry | None = None) -> float:
    """Sum of a catalogued counter over all its label values (e.g. every endpoint's failures)."""
    family = metric(name, registry or REGISTRY)
    return float(sum(sample.value for collected in family.collect() for sample in collected.samples
                     if sample.name.endswith("_total")))


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> int:
    """Start the driver's Prometheus `/metrics` server in a thread; returns the bound port (0 = off)."""
    if port <= 0:
        return 0
    server, _thread = start_http_server(port, addr=host, registry=registry or REGISTRY)
    bound = server.server_address[1]
    log.info("driver metrics on http://%s:%d/metrics", host, bound)
    return int(bound)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (a torn last line from a killed writer is ignored)."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
