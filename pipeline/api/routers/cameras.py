"""``/cameras``: register, list, inspect, pause/resume and remove camera streams at run time.

The registry lives in Redis; the camera manager notices every change through the registry
version counter and starts or stops the camera's reader, so no endpoint talks to Ray.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pipeline.api.auth import WriteAuth
from pipeline.api.deps import SettingsDep, StoreDep
from pipeline.api.schemas import CameraCreate, CameraOut, CameraPatch
from pipeline.ingest.sources import validate_source
from pipeline.store.models import CameraConfig

router = APIRouter(prefix="/cameras", tags=["cameras"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CameraOut, dependencies=[WriteAuth])
def add_camera(body: CameraCreate, settings: SettingsDep, store: StoreDep) -> CameraOut:
    """Register a camera; 409 if the id exists, 422 if the source is malformed or not allowed."""
    # Raises InvalidSource (-> 422) with a redacted, human-readable reason.
    validate_source(body.url, settings.ingest)
    cfg = CameraConfig(
        id=body.id,
        url=body.url.strip(),
        fps=body.fps if body.fps is not None else settings.ingest.default_fps,
        name=body.name,
        enabled=body.enabled,
        keep_frames=body.keep_frames,
        labels=body.labels,
    )
    store.add_camera(cfg)
    return CameraOut.from_config(cfg)


@router.get("", response_model=list[CameraOut])
def list_cameras(store: StoreDep) -> list[CameraOut]:
    """All registered cameras, sorted by id."""
    return [CameraOut.from_config(c) for c in sorted(store.list_cameras(), key=lambda c: c.id)]


@router.get("/{camera_id}", response_model=CameraOut)
def get_camera(camera_id: str, store: StoreDep) -> CameraOut:
    """One camera; 404 if unknown."""
    return CameraOut.from_config(store.get_camera(camera_id))


@router.patch("/{camera_id}", response_model=CameraOut, dependencies=[WriteAuth])
def patch_camera(camera_id: str, body: CameraPatch, store: StoreDep) -> CameraOut:
    """Pause/resume (``enabled``), change the sampling rate, name or labels."""
    current = store.get_camera(camera_id)
    changes = body.model_dump(exclude_none=True)
    updated = current.model_copy(update=changes)
    # model_copy skips validation; re-validate so e.g. fps bounds still hold.
    updated = CameraConfig.model_validate(updated.model_dump())
    store.update_camera(updated)
    return CameraOut.from_config(updated)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAuth])
def remove_camera(camera_id: str, store: StoreDep) -> Response:
    """Unregister a camera; its reader stops within one reconcile interval. Its history stays queryable."""
    store.remove_camera(camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
