"""``GET /get_model_info`` (alias ``/model_info``), ``/get_weight_version`` and ``/get_server_info``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.rollout.state import RolloutState, rollout_state

router = APIRouter()


def model_info(state: Annotated[RolloutState, Depends(rollout_state)]) -> dict[str, Any]:
    engine = state.engine
    config = engine.model.config
    return {
        "model_path": engine.model_path,
        "tokenizer_path": engine.model_path,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": engine.weight_version,
        "model_type": getattr(config, "model_type", None),
        "architectures": getattr(config, "architectures", None),
        "served_model_name": state.model_name,
    }


router.get("/get_model_info")(model_info)
router.get("/model_info")(model_info)


@router.get("/get_weight_version")
async def weight_version(state: Annotated[RolloutState, Depends(rollout_state)]) -> dict[str, Any]:
    return {"weight_version": state.engine.weight_version}


@router.get("/get_server_info")
async def server_info(state: Annotated[RolloutState, Depends(rollout_state)]) -> dict[str, Any]:
    engine, scheduler = state.engine, state.scheduler
    return {**model_info(state), "device": str(engine.device), "dtype": engine.dtype,
            "max_batch_rows": state.max_batch_rows, "waiting_requests": scheduler.waiting,
            "batches": scheduler.batches, "block_vision_tokens": bool(engine.blocked_ids),
            "version": "videop2r-embedded"}
