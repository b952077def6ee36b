"""``POST /generate``: SGLang's native generation route (shapes in ``services.rollout.jobs``).

A body the schema gate refuses gets ``{"error": "<text>"}``; one refused while it is processed
(``RequestError``, media, prompt, the engine's job checks) gets ``{"error": {"message": ...}}``
from ``services.rollout.errors``. Every answer is counted in ``videop2r_rollout_requests_total``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.rollout.body_checks import text_problem
from services.rollout.contract import contract_error
from services.rollout.errors import error_response
from services.rollout.jobs import RequestError, generate_jobs, generate_response
from services.rollout.prompt_job import InvalidJob
from services.rollout.protocol import GenerateIn
from services.rollout.state import RolloutState, rollout_state

router = APIRouter()


@router.post("/generate")
async def generate(request: GenerateIn, raw: Request,
                   state: Annotated[RolloutState, Depends(rollout_state)]) -> Any:
    body = await raw.json()
    contract = contract_error(body)
    if contract is not None:  # SGLang's schema gate: http_server.py 937-939
        state.count_request("400")
        return JSONResponse(status_code=400, content={"error": contract})
    problem = text_problem(body, state.max_text_chars)
    if problem is not None:
        raise RequestError(problem)
    started = time.perf_counter()
    jobs = await asyncio.to_thread(generate_jobs, request, state.engine, state.media)
    try:
        results = await state.run_jobs(jobs)
    except InvalidJob:
        raise
    except Exception as exc:  # noqa: BLE001
        state.count_request("500")
        return error_response(500, f"generation failed: {exc}")
    elapsed = time.perf_counter() - started
    state.count_request("200")
    state.metrics.latency.observe(elapsed)
    state.metrics.generated.inc(sum(len(sample.output_ids) for result in results for sample in result.samples))
    return generate_response(request, jobs, results, elapsed, state.engine.tokenizer)
