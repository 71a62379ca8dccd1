"""``/cameras/{id}/summary`` and ``/series``: the aggregate dashboards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pipeline.aggregate.summary import SeriesPoint, Summary
from pipeline.api.deps import StoreDep

router = APIRouter(prefix="/cameras", tags=["summary"])

Window = Annotated[float, Query(ge=1, le=86400, description="Window length in seconds, ending now (10 s … 24 h).")]


@router.get("/{camera_id}/summary", response_model=Summary)
def camera_summary(camera_id: str, store: StoreDep, window: Window = 60) -> Summary:
    """Counts and shares per emotion, mean probabilities, faces, tracks and dominant emotion."""
    # 404 for an id that was never registered; get_camera raises CameraNotFound.
    store.get_camera(camera_id)
    return store.summary(camera_id, window)


@router.get("/{camera_id}/series", response_model=list[SeriesPoint])
def camera_series(camera_id: str, store: StoreDep, window: Window = 300) -> list[SeriesPoint]:
    """One point per second (windows up to 600 s) or per minute (longer windows), oldest first."""
    store.get_camera(camera_id)
    return store.series(camera_id, window)
