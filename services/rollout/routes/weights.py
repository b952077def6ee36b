"""``POST /update_weights_from_disk`` and ``GET|POST /flush_cache``.

A weight update takes ``{model_path, weight_version?, load_format?, flush_cache?}`` and reloads
from a local directory between batches (anything else: 400, as SGLang's loader); it answers
``{success, message, num_paused_requests}``, 400 with the old weights kept on failure.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from services.rollout.protocol import UpdateWeightsIn
from services.rollout.state import RolloutState, rollout_state

log = logging.getLogger(__name__)

router = APIRouter()


def _reload(state: RolloutState, request: UpdateWeightsIn) -> str:
    """On the engine thread, with no batch running: the new weights, then the media cache if asked."""
    message = state.engine.reload(request.model_path, request.weight_version, state.storage_config)
    if request.flush_cache:
        state.media.clear()
    return message


@router.post("/update_weights_from_disk")
async def update_weights(request: UpdateWeightsIn,
                         state: Annotated[RolloutState, Depends(rollout_state)]) -> JSONResponse:
    waiting = state.scheduler.waiting
    if not os.path.isdir(request.model_path):
        # SGLang's DefaultModelLoader takes a local directory, else the model hub (offline in a pod)
        return JSONResponse(status_code=400, content={
            "success": False, "num_paused_requests": waiting,
            "message": f"Failed to update weights: {request.model_path} is not a local directory "
                       f"(SGLang loads weights from a directory on the pod, not s3:// or the hub)"})
    try:
        message = await state.scheduler.exclusive(functools.partial(_reload, state, request))
    except Exception as exc:  # noqa: BLE001 - the message goes back to the trainer
        log.warning("weight update from %s failed: %s", request.model_path, exc)
        return JSONResponse(status_code=400, content={
            "success": False, "message": f"Failed to update weights from {request.model_path}: {exc}",
            "num_paused_requests": waiting})
    state.publish_version()
    if request.weight_version is not None:
        message += f" Weight version updated to {request.weight_version}."
    log.info("%s", message)
    return JSONResponse(content={"success": True, "message": message, "num_paused_requests": waiting})


@router.api_route("/flush_cache", methods=["GET", "POST"])
async def flush_cache(state: Annotated[RolloutState, Depends(rollout_state)]) -> PlainTextResponse:
    dropped = state.media.clear()
    return PlainTextResponse(f"Cache flushed.\n{dropped} decoded media entries dropped.\n")
