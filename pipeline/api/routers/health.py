"""Liveness, readiness and per-camera stream health."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pipeline.api.deps import StoreDep
from pipeline.api.schemas import CameraHealth, Status

probes = APIRouter(tags=["health"])
router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 2.0


@probes.get("/healthz", response_model=Status)
def healthz() -> Status:
    """Liveness: the process answers. Never touches Redis, so a Redis outage does not restart the API."""
    return Status(status="ok")


@probes.get("/readyz", response_model=Status, responses={503: {"model": Status}})
def readyz(store: StoreDep) -> Status | JSONResponse:
    """Readiness: Redis answers PING within a bound."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if store.ping():
            return Status(status="ready")
        if time.monotonic() >= deadline:
            body = Status(status="unavailable", detail="Redis does not answer")
            return JSONResponse(status_code=503, content=body.model_dump())
        time.sleep(0.2)


@router.get("/cameras/{camera_id}/health", response_model=CameraHealth)
def camera_health(camera_id: str, store: StoreDep) -> CameraHealth:
    """Reader state and counters of one camera (404 if unknown)."""
    cfg = store.get_camera(camera_id)
    health = {k: v for k, v in store.get_health(camera_id).items() if v is not None}
    return CameraHealth(
        camera_id=camera_id,
        enabled=cfg.enabled,
        reporting=bool(health),
        health=health,
        counters=store.get_counters(camera_id),
    )
