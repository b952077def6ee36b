"""``GET /metrics``: the server's Prometheus registry (``videop2r_rollout_*``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.rollout.state import RolloutState, rollout_state

router = APIRouter()


@router.get("/metrics")
async def metrics(state: Annotated[RolloutState, Depends(rollout_state)]) -> Response:
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
