"""One `videop2r eval` run: benchmarks × data folders × a model → per-item JSONL and a summary.

`run_eval(request, config)`:

1. resolves each benchmark's folder (``--data NAME=URI``, or ``<URI>/<name>`` when several
   benchmarks share one root, or the URI itself for a single benchmark);
2. checks the output folder: a run there with other settings (model, frames, sampling, ...) is
   refused — resuming it would mix two evaluations — unless `fresh` discards it;
3. reaches the model: ``--endpoint`` URLs (SGLang API or OpenAI-compatible), or ``--model DIR``
   served by a local embedded rollout server started for the run and stopped after;
4. runs the benchmarks one after the other (`BenchmarkRunner`), rewriting the summary after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from videop2r.config import ConfigError, VideoP2RConfig
from videop2r.eval.benchmarks import get_benchmark
from videop2r.eval.blind import BLIND_DIR
from videop2r.eval.chat_client import ChatClient
from videop2r.eval.policy import ChatTransport, GenerateTransport, Policy
from videop2r.eval.runner import BenchmarkReport, BenchmarkRunner, EndpointDown, result_path
from videop2r.eval.source import BenchmarkSource
from videop2r.eval.summary import write_summary

log = logging.getLogger(__name__)
RUN_FILE = "run.json"


@dataclass
class EvalRequest:
    benchmarks: list[str]
    # -- one URI for all benchmarks (a root with one folder per benchmark when there are several),
    #    and/or per-benchmark URIs
    data: str | None = None
    data_by_benchmark: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    endpoints: list[str] = field(default_factory=list)
    output: Path = Path("runs/eval")
    label: str | None = None
    fresh: bool = False
    progress: bool = True
    # -- also run every benchmark with its frames blanked (videop2r.eval.blind)
    blind: bool = False


def benchmark_uri(request: EvalRequest, name: str) -> str:
    for key, uri in request.data_by_benchmark.items():
        if get_benchmark(key).name == name:
            return uri
    if request.data is None:
        raise ConfigError(
            f"config error: --data: no data for benchmark {name} (give --data URI or --data {name}=URI)"
        )
    if len(request.benchmarks) == 1:
        return request.data
    return request.data.rstrip("/") + "/" + name


def settings_of(config: VideoP2RConfig, label: str, transport: str) -> dict[str, Any]:
    """What the results depend on; a resumed run must have the same."""
    ev = config.eval
    settings: dict[str, Any] = {
        "model": label,
        "transport": transport,
        "frames": ev.frames,
        "max_pixels": ev.max_pixels,
        "min_pixels": ev.min_pixels,
        "temperature": ev.temperature,
        "top_p": ev.top_p,
        "max_new_tokens": ev.max_new_tokens,
    }
    if transport == "chat":
        settings["chat_media"] = ev.chat_media
    else:
        settings["video_transport"] = config.rollout.video_transport
    settings["sufficiency"] = f"{ev.sufficiency_model}@{ev.sufficiency_url}" if ev.sufficiency_url else "off"
    return settings


def check_output(out_dir: Path, settings: dict[str, Any], benchmarks: list[str], fresh: bool) -> None:
    """Refuse to resume a run of other settings; with `fresh`, discard the old results instead."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / RUN_FILE
    if fresh:
        for name in benchmarks:
            result_path(out_dir, name).unlink(missing_ok=True)
    elif run_file.exists():
        try:
            previous = json.loads(run_file.read_text()).get("settings", {})
        except (ValueError, AttributeError):
            previous = {}
        changed = sorted(
            key for key in set(previous) | set(settings) if previous.get(key) != settings.get(key)
        )
        if changed:
            detail = ", ".join(f"{key}: {previous.get(key)!r} -> {settings.get(key)!r}" for key in changed)
            raise ConfigError(
                f"config error: --output {out_dir} holds a run with other settings ({detail}); "
                "use another --output, or --fresh to discard those results"
            )
    run_file.write_text(json.dumps({"settings": settings}, indent=1) + "\n")


@contextlib.contextmanager
def local_server(model_dir: str, log_dir: Path) -> Iterator[tuple[list[str], Callable[[], None]]]:
    """A `videop2r serve rollout` process on `model_dir` for the run's duration: its URL, and a call that
    waits until it is healthy (the caller loads the processor meanwhile)."""
    from videop2r.local_services import LocalServices, ServiceStartError, rollout_service

    service = rollout_service(model_dir, log_dir, name="eval-rollout")
    services = LocalServices([service], start_timeout_s=600.0).start()

    def wait() -> None:
        try:
            services.wait_healthy()
        except ServiceStartError as exc:
            raise ConfigError(
                f"config error: --model {model_dir}: the rollout server did not start: {exc}"
            ) from None

    try:
        yield [service.url], wait
    finally:
        services.stop()


def server_model_path(endpoint: str) -> str | None:
    try:
        info = httpx.get(endpoint.rstrip("/") + "/get_model_info", timeout=10.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    return info.get("model_path") if isinstance(info, dict) else None


def load_processor_for(config: VideoP2RConfig, model_dir: str | None, endpoints: list[str]) -> Any:
    """The checkpoint's processor for the generate transport, or None when none can be found."""
    from videop2r.model import ModelLoadError, load_processor

    candidates = [path for path in (model_dir, config.eval.processor) if path]
    if not candidates and endpoints:
        path = server_model_path(endpoints[0])
        candidates = [path] if path else []
    for path in candidates:
        try:
            return load_processor(path, config.storage)
        except (ModelLoadError, OSError, ValueError) as exc:
            log.warning("cannot load a processor from %s: %s", path, exc)
    return None


def open_policy(config: VideoP2RConfig, model_dir: str | None, endpoints: list[str]) -> tuple[Policy, str]:
    """The policy for the configured transport and its transport name."""
    from videop2r.model import vision_token_ids
    from videop2r.rollout import RolloutClient

    ev = config.eval
    processor = load_processor_for(config, model_dir, endpoints) if ev.transport != "chat" else None
    if ev.transport == "generate" and processor is None:
        raise ConfigError(
            "config error: eval.transport: generate needs the checkpoint's processor "
            "(--model DIR, eval.processor=PATH, or a server whose model_path is readable here); "
            "or use eval.transport=chat"
        )
    if processor is not None:
        rollout = RolloutClient(
            endpoints, timeout_s=ev.timeout_s, max_retries=ev.max_retries, check_version=False
        )
        policy = GenerateTransport(
            rollout,
            processor,
            temperature=ev.temperature,
            top_p=ev.top_p,
            max_new_tokens=ev.max_new_tokens,
            blocked_token_ids=vision_token_ids(processor.tokenizer),
            video_transport=config.rollout.video_transport,
        )
        return policy, "generate"
    if len(endpoints) > 1:
        log.warning("chat transport: using %s only (of %d endpoints)", endpoints[0], len(endpoints))
    chat = ChatClient(
        endpoints[0],
        ev.chat_model,
        api_key=os.environ.get(ev.api_key_env) or None,
        timeout_s=ev.timeout_s,
        max_retries=ev.max_retries,
    )
    return ChatTransport(
        chat,
        media_mode=ev.chat_media,
        temperature=ev.temperature,
        top_p=ev.top_p,
        max_tokens=ev.max_new_tokens,
    ), "chat"


def default_label(request: EvalRequest, config: VideoP2RConfig, endpoints: list[str], transport: str) -> str:
    """--name, else the checkpoint: the --model path, or the path the server reports serving."""
    if request.label:
        return request.label
    if request.model:
        return request.model if "://" in request.model else str(Path(request.model).resolve())
    if transport == "generate":
        path = server_model_path(endpoints[0])
        if path:
            return path
    return f"{config.eval.chat_model}@{endpoints[0]}"


@dataclass
class EvalOutcome:
    label: str
    reports: list[BenchmarkReport]
    summary: Path
    # -- --blind: the same benchmarks with blank frames (empty without --blind)
    blind_reports: list[BenchmarkReport] = field(default_factory=list)


def run_eval(request: EvalRequest, config: VideoP2RConfig) -> EvalOutcome:
    """Run the request; one report per benchmark, also written to ``summary.md`` / ``summary.json``."""
    if bool(request.model) == bool(request.endpoints):
        raise ConfigError("config error: give exactly one of --model DIR and --endpoint URL")
    adapters = [get_benchmark(name) for name in request.benchmarks]
    names = [adapter.name for adapter in adapters]
    sources = {name: BenchmarkSource.open(benchmark_uri(request, name), config.storage) for name in names}
    out_dir = Path(request.output)
    with contextlib.ExitStack() as stack:
        wait_ready: Callable[[], None] = lambda: None  # noqa: E731
        endpoints = request.endpoints
        if request.model:
            endpoints, wait_ready = stack.enter_context(local_server(request.model, out_dir / "logs"))
        policy, transport = open_policy(config, request.model, endpoints)
        wait_ready()
        label = default_label(request, config, endpoints, transport)
        settings = settings_of(config, label, transport)
        check_output(out_dir, settings, names, request.fresh)
        reports, blind_reports = asyncio.run(
            _run_all(adapters, sources, policy, out_dir, config, label, settings, request.progress, request.blind)
        )
    return EvalOutcome(label, reports, out_dir / "summary.md", blind_reports or [])


async def _run_all(
    adapters: list,
    sources: dict[str, BenchmarkSource],
    policy: Policy,
    out_dir: Path,
    config: VideoP2RConfig,
    label: str,
    settings: dict[str, Any],
    progress: bool,
    blind: bool = False,
) -> tuple[list[BenchmarkReport], list[BenchmarkReport] | None]:
    ev = config.eval
    sufficiency = (
        ChatClient(
            ev.sufficiency_url,
            ev.sufficiency_model,
            api_key=os.environ.get(ev.api_key_env) or None,
            timeout_s=ev.timeout_s,
            max_retries=ev.max_retries,
        )
        if ev.sufficiency_url
        else None
    )
    reports: list[BenchmarkReport] = []
    blind_reports: list[BenchmarkReport] | None = [] if blind else None
    try:
        for adapter in adapters:
            runner = BenchmarkRunner(
                adapter,
                sources[adapter.name],
                policy,
                out_dir,
                ev,
                sufficiency=sufficiency,
                progress=progress,
            )
            report = await runner.run()
            reports.append(report)
            if blind_reports is not None and not report.stopped and not report.error:
                blank_runner = BenchmarkRunner(adapter, sources[adapter.name], policy, out_dir / BLIND_DIR, ev,
                                               progress=progress, blind=True)
                blind_report = await blank_runner.run()
                blind_reports.append(blind_report)
                report.stopped = report.stopped or blind_report.stopped
            write_summary(out_dir, label, reports, settings, blind_reports)
            if report.stopped:
                log.error(
                    "stopping: %s (finished items are kept; rerun the same command to resume)", report.stopped
                )
                raise EndpointDown(report.stopped)
    finally:
        await policy.aclose()
        if sufficiency is not None:
            await sufficiency.aclose()
    log.info("results in %s", out_dir / "summary.md")
    return reports, blind_reports
