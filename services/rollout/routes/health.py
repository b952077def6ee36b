"""``GET /health`` (200 once the model is loaded, 503 while shutting down) and
``GET /health_generate`` (200 if a one-token generation completes within 20 s)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.rollout.engine import GenerationEngine
from services.rollout.prompt_job import PromptJob, SamplingOptions
from services.rollout.state import RolloutState, rollout_state

HEALTH_GENERATE_TIMEOUT_S = 20.0

router = APIRouter()


@router.get("/health")
async def health(state: Annotated[RolloutState, Depends(rollout_state)]) -> Response:
    return Response(status_code=503 if state.shutting_down else 200)


@router.get("/health_generate")
async def health_generate(state: Annotated[RolloutState, Depends(rollout_state)]) -> Response:
    engine, scheduler = state.engine, state.scheduler
    # like SGLang: a busy engine that made progress recently is healthy without a probe
    if scheduler.running and time.monotonic() - engine.heartbeat < HEALTH_GENERATE_TIMEOUT_S:
        return Response(status_code=200)
    job = PromptJob(inputs=_one_token_prompt(engine), sampling=SamplingOptions(max_new_tokens=1, temperature=0.0))
    try:
        await asyncio.wait_for(scheduler.submit([job]), HEALTH_GENERATE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return Response(status_code=503)
    return Response(status_code=200)


def _one_token_prompt(engine: GenerationEngine) -> dict[str, Any]:
    import torch

    token = engine.tokenizer.convert_tokens_to_ids("<|im_start|>")
    ids = torch.tensor([[token if isinstance(token, int) and token >= 0 else 0]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": torch.zeros_like(ids)}
