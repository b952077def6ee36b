"""FastAPI app of the embedded rollout server: the subset of SGLang's HTTP API training needs.

Native API (paths and fields as SGLang 0.5.x ``python/sglang/srt/entrypoints/http_server.py``):

- ``GET /health`` — 200 once the model is loaded (503 while shutting down);
  ``GET /health_generate`` — 200 if a one-token generation completes within 20 s.
- ``GET /get_model_info`` (alias ``/model_info``) — model_path, tokenizer_path, is_generation,
  weight_version, model_type, architectures; ``GET /get_weight_version``; ``GET /get_server_info``.
- ``POST /generate`` — ``services.rollout.jobs`` (request and response shapes).
- ``POST /update_weights_from_disk`` — ``{model_path, weight_version?, load_format?}``: reloads
  from a directory or an s3:// URI between batches; ``{success, message, num_paused_requests}``,
  400 (old weights kept) on failure.
- ``GET|POST /flush_cache`` — drops the decoded-media cache.
- ``GET /v1/models``, ``POST /v1/chat/completions`` — OpenAI-compatible (``services.rollout.chat``).
- ``GET /metrics`` — Prometheus (``videop2r_rollout_*``).

Errors are SGLang/OpenAI shaped: ``{"object": "error", "message", "type", "param", "code"}``,
400 for anything wrong with the request (validation messages name the field).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.rollout.chat import chat_job, chat_response
from services.rollout.engine import GenerationEngine, PromptJob, SamplingOptions
from services.rollout.jobs import RequestError, generate_jobs, generate_response
from services.rollout.media_sources import MediaSources
from services.rollout.protocol import ChatCompletionIn, GenerateIn, UpdateWeightsIn
from services.rollout.scheduler import BatchScheduler
from videop2r.metrics import metric
from videop2r.prompting import PromptError
from videop2r.rollout.media import MediaError

log = logging.getLogger(__name__)

HEALTH_GENERATE_TIMEOUT_S = 20.0


def error_response(status: int, message: str) -> JSONResponse:
    kind = {400: "BadRequest", 404: "NotFound", 500: "InternalServerError", 503: "ServiceUnavailable"}
    return JSONResponse(
        status_code=status,
        content={"object": "error", "message": message, "type": kind.get(status, str(status)), "param": None,
                 "code": status},
    )


def _validation_message(exc: RequestValidationError) -> str:
    """One line per problem, naming the field (``sampling_params.temperatur: Extra inputs ...``).

    Pydantic reports a union field once per alternative; the "wrong type" complaints of the
    alternatives that did not apply are dropped when a more specific error exists."""
    errors = list(exc.errors())
    specific = [error for error in errors if not str(error.get("type", "")).endswith("_type")]
    parts: list[str] = []
    for error in specific or errors:
        location = ".".join(
            str(item) for item in error.get("loc", ()) if item != "body" and "[" not in str(item)
        )
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        line = f"{location or 'body'}: {message}"
        if line not in parts:
            parts.append(line)
    return "; ".join(parts) or "invalid request"


def create_app(engine: GenerationEngine, *, media: MediaSources | None = None, served_model_name: str | None = None,
               max_batch_rows: int = 64, chat_max_tokens: int = 512, storage_config: Any = None,
               registry: CollectorRegistry | None = None) -> FastAPI:
    """The app around a loaded engine. `registry`: Prometheus registry (default: the global one)."""
    media = media or MediaSources(storage_config=storage_config)
    scheduler = BatchScheduler(engine, max_batch_rows=max_batch_rows)
    registry = registry or CollectorRegistry(auto_describe=True)
    requests_total = metric("videop2r_rollout_requests_total", registry)
    latency = metric("videop2r_rollout_request_seconds", registry)
    generated = metric("videop2r_rollout_generated_tokens_total", registry)
    in_flight = metric("videop2r_rollout_in_flight", registry)
    version_gauge = metric("videop2r_rollout_weight_version", registry)
    model_name = served_model_name or engine.model_path
    state = {"shutting_down": False}

    def publish_version() -> None:
        try:
            version_gauge.set(float(engine.weight_version))
        except (TypeError, ValueError):
            version_gauge.set(-1)  # a non-numeric version ("default")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        scheduler.start()
        publish_version()
        try:
            yield
        finally:
            state["shutting_down"] = True
            await scheduler.stop()

    app = FastAPI(title="videop2r rollout (SGLang API)", lifespan=lifespan)
    app.state.engine = engine
    app.state.scheduler = scheduler
    app.state.media = media

    def refused(request: Request, message: str) -> JSONResponse:
        if request.url.path == "/generate":
            requests_total.labels(status="400").inc()
        return error_response(400, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return refused(request, _validation_message(exc))

    @app.exception_handler(RequestError)
    @app.exception_handler(MediaError)
    @app.exception_handler(PromptError)
    async def _bad(request: Request, exc: ValueError) -> JSONResponse:
        return refused(request, str(exc))

    async def run_jobs(jobs: list[PromptJob]):
        in_flight.inc()
        try:
            return await scheduler.submit(jobs)
        finally:
            in_flight.dec()

    # -- health and info

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=503 if state["shutting_down"] else 200)

    @app.get("/health_generate")
    async def health_generate() -> Response:
        # like SGLang: a busy engine that made progress recently is healthy without a probe
        if scheduler.running and time.monotonic() - engine.heartbeat < HEALTH_GENERATE_TIMEOUT_S:
            return Response(status_code=200)
        job = PromptJob(inputs=_one_token_prompt(engine), sampling=SamplingOptions(max_new_tokens=1, temperature=0.0))
        try:
            await asyncio.wait_for(scheduler.submit([job]), HEALTH_GENERATE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - any failure means unhealthy
            return Response(status_code=503)
        return Response(status_code=200)

    def model_info() -> dict[str, Any]:
        config = engine.model.config
        return {
            "model_path": engine.model_path,
            "tokenizer_path": engine.model_path,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": engine.weight_version,
            "model_type": getattr(config, "model_type", None),
            "architectures": getattr(config, "architectures", None),
            "served_model_name": model_name,
        }

    app.get("/get_model_info")(model_info)
    app.get("/model_info")(model_info)

    @app.get("/get_weight_version")
    async def weight_version() -> dict[str, Any]:
        return {"weight_version": engine.weight_version}

    @app.get("/get_server_info")
    async def server_info() -> dict[str, Any]:
        return {**model_info(), "device": str(engine.device), "dtype": engine.dtype, "max_batch_rows": max_batch_rows,
                "waiting_requests": scheduler.waiting, "batches": scheduler.batches,
                "block_vision_tokens": bool(engine.blocked_ids), "version": "videop2r-embedded"}

    # -- generation

    @app.post("/generate")
    async def generate(request: GenerateIn) -> Any:
        started = time.perf_counter()
        jobs = await asyncio.to_thread(generate_jobs, request, engine, media)
        try:
            results = await run_jobs(jobs)
        except Exception as exc:  # noqa: BLE001
            requests_total.labels(status="500").inc()
            return error_response(500, f"generation failed: {exc}")
        elapsed = time.perf_counter() - started
        requests_total.labels(status="200").inc()
        latency.observe(elapsed)
        generated.inc(sum(len(sample.output_ids) for result in results for sample in result.samples))
        return generate_response(request, jobs, results, elapsed, engine.tokenizer)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionIn) -> Any:
        job = await asyncio.to_thread(chat_job, request, engine, media, chat_max_tokens)
        try:
            (result,) = await run_jobs([job])
        except Exception as exc:  # noqa: BLE001
            return error_response(500, f"generation failed: {exc}")
        generated.inc(sum(len(sample.output_ids) for sample in result.samples))
        return chat_response(request, job, result, model_name, engine.tokenizer)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": model_name, "object": "model", "created": int(time.time()), "owned_by": "videop2r",
            "root": engine.model_path,
            "max_model_len": int(engine.model.config.text_config.max_position_embeddings),
        }]}

    # -- weights and caches

    @app.post("/update_weights_from_disk")
    async def update_weights(request: UpdateWeightsIn) -> JSONResponse:
        waiting = scheduler.waiting

        def reload() -> str:
            message = engine.reload(request.model_path, request.weight_version, storage_config)
            if request.flush_cache:
                media.clear()
            return message

        try:
            message = await scheduler.exclusive(reload)
        except Exception as exc:  # noqa: BLE001 - the message goes back to the trainer
            log.warning("weight update from %s failed: %s", request.model_path, exc)
            return JSONResponse(status_code=400, content={
                "success": False, "message": f"Failed to update weights from {request.model_path}: {exc}",
                "num_paused_requests": waiting})
        publish_version()
        if request.weight_version is not None:
            message += f" Weight version updated to {request.weight_version}."
        log.info("%s", message)
        return JSONResponse(content={"success": True, "message": message, "num_paused_requests": waiting})

    @app.api_route("/flush_cache", methods=["GET", "POST"])
    async def flush_cache() -> PlainTextResponse:
        dropped = media.clear()
        return PlainTextResponse(f"Cache flushed.\n{dropped} decoded media entries dropped.\n")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _one_token_prompt(engine: GenerationEngine) -> dict[str, Any]:
    import torch

    token = engine.tokenizer.convert_tokens_to_ids("<|im_start|>")
    ids = torch.tensor([[token if isinstance(token, int) and token >= 0 else 0]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": torch.zeros_like(ids)}
