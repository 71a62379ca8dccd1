"""``/cameras/{id}/summary``, ``/timeseries`` (and its alias ``/series``): the aggregate dashboards."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.aggregate.summary import SeriesPoint, Summary, series_point
from pipeline.api.deps import StoreDep
from pipeline.api.params import StepQuery, WindowQuery, step_seconds, window_seconds

router = APIRouter(prefix="/cameras", tags=["summary"])


@router.get("/{camera_id}/summary", response_model=Summary)
def camera_summary(camera_id: str, store: StoreDep, window: WindowQuery = "60") -> Summary:
    """Counts and shares per emotion, mean probabilities, faces, tracks and dominant emotion."""
    seconds = window_seconds(window)
    # 404 for an id that was never registered; get_camera raises CameraNotFound.
    store.get_camera(camera_id)
    return store.summary(camera_id, seconds)


@router.get("/{camera_id}/timeseries", response_model=list[SeriesPoint])
def camera_timeseries(
    camera_id: str, store: StoreDep, window: WindowQuery = "300", step: StepQuery = None
) -> list[SeriesPoint]:
    """Faces and top-1 counts per step, oldest first; empty steps included so charts keep their x axis.

    Windows up to 10 min are read from per-second buckets, longer ones from per-minute
    buckets; ``step`` is rounded up to whole buckets and aligned to the Unix epoch.
    """
    seconds = window_seconds(window)
    step_s = step_seconds(step, hi=seconds)
    store.get_camera(camera_id)
    _, steps = store.timeseries(camera_id, seconds, step_s)
    return [series_point(ts, totals) for ts, totals in steps]


@router.get("/{camera_id}/series", response_model=list[SeriesPoint], deprecated=True)
def camera_series(
    camera_id: str, store: StoreDep, window: WindowQuery = "300", step: StepQuery = None
) -> list[SeriesPoint]:
    """Alias of ``/timeseries`` kept for older clients."""
    return camera_timeseries(camera_id, store, window, step)
