"""OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models`` (``services.rollout.chat``
turns a chat request into an engine job and its result into the answer). Every error is an
``error_response`` (``{"object": "error", ...}``), as SGLang's OpenAI server answers."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.rollout.body_checks import text_problem
from services.rollout.chat import chat_job, chat_response
from services.rollout.errors import error_response
from services.rollout.prompt_job import InvalidJob
from services.rollout.protocol import ChatCompletionIn
from services.rollout.state import RolloutState, rollout_state

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: ChatCompletionIn, raw: Request,
                           state: Annotated[RolloutState, Depends(rollout_state)]) -> Any:
    problem = text_problem(await raw.json(), state.max_text_chars)
    if problem is not None:
        return error_response(400, problem)
    job = await asyncio.to_thread(chat_job, request, state.engine, state.media, state.chat_max_tokens)
    try:
        (result,) = await state.run_jobs([job])
    except InvalidJob:
        raise
    except Exception as exc:  # noqa: BLE001
        return error_response(500, f"generation failed: {exc}")
    state.metrics.generated.inc(sum(len(sample.output_ids) for sample in result.samples))
    return chat_response(request, job, result, state.model_name, state.engine.tokenizer)


@router.get("/v1/models")
async def models(state: Annotated[RolloutState, Depends(rollout_state)]) -> dict[str, Any]:
    engine = state.engine
    return {"object": "list", "data": [{
        "id": state.model_name, "object": "model", "created": int(time.time()), "owned_by": "videop2r",
        "root": engine.model_path,
        "max_model_len": int(engine.model.config.text_config.max_position_embeddings),
    }]}
