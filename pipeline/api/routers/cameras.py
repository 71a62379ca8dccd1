"""``/cameras``: register, list, inspect, pause/resume and remove camera streams at run time.

The registry lives in Redis; the camera manager notices every change through the registry
version counter and starts or stops the camera's reader, so no endpoint talks to Ray.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from pipeline.api.auth import WriteAuth
from pipeline.api.deps import SettingsDep, StoreDep
from pipeline.api.schemas import CameraCreate, CameraOut, CameraPatch
from pipeline.ingest.sources import validate_source
from pipeline.store.models import GROUP_PATTERN, CameraConfig

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
        groups=body.groups,
    )
    store.add_camera(cfg)
    return CameraOut.from_config(cfg)


GroupFilter = Annotated[str | None, Query(pattern=GROUP_PATTERN, description="Only cameras in this group.")]


@router.get("", response_model=list[CameraOut])
def list_cameras(store: StoreDep, group: GroupFilter = None) -> list[CameraOut]:
    """All registered cameras (or the members of ``group``), sorted by id."""
    cams = sorted(store.list_cameras(), key=lambda c: c.id)
    return [CameraOut.from_config(c) for c in cams if group is None or group in c.groups]


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


def _set_enabled(camera_id: str, enabled: bool, store: StoreDep) -> CameraOut:
    current = store.get_camera(camera_id)
    if current.enabled != enabled:
        # Only a real change bumps the registry version the camera manager watches.
        current = current.model_copy(update={"enabled": enabled})
        store.update_camera(current)
    return CameraOut.from_config(current)


@router.post("/{camera_id}/pause", response_model=CameraOut, dependencies=[WriteAuth])
def pause_camera(camera_id: str, store: StoreDep) -> CameraOut:
    """Stop reading the camera but keep it registered (idempotent)."""
    return _set_enabled(camera_id, False, store)


@router.post("/{camera_id}/resume", response_model=CameraOut, dependencies=[WriteAuth])
def resume_camera(camera_id: str, store: StoreDep) -> CameraOut:
    """Start reading a paused camera again (idempotent)."""
    return _set_enabled(camera_id, True, store)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAuth])
def remove_camera(camera_id: str, store: StoreDep) -> Response:
    """Unregister a camera; its reader stops within one reconcile interval. Its history stays queryable."""
    store.remove_camera(camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
