"""``/overview``: every camera's state, fps and emotion mix in one request (CLI ``watch``, dashboards)."""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter

from pipeline.aggregate.summary import dominant_label
from pipeline.api.deps import StoreDep
from pipeline.api.metrics import STATES
from pipeline.api.params import WindowQuery, window_seconds
from pipeline.api.schemas import CameraOverview, Capacity, Overview
from pipeline.contracts import LABELS
from pipeline.ingest.capacity import capacity_report

router = APIRouter(tags=["summary"])


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


@router.get("/overview", response_model=Overview)
def overview(store: StoreDep, window: WindowQuery = "60") -> Overview:
    """One row per camera, sorted by id: reader state and fps, faces, dominant emotion and shares."""
    seconds = window_seconds(window)
    now = time.time()
    cams = sorted(store.list_cameras(), key=lambda c: c.id)
    snapshots = store.health_and_counters([c.id for c in cams])
    rows = []
    for cam in cams:
        health, _ = snapshots[cam.id]
        state = str(health.get("state", "unknown"))
        totals = store.window_totals([cam.id], seconds, now)
        summary_counts = dict(zip(LABELS, totals.counts))
        faces = totals.faces
        rows.append(CameraOverview(
            id=cam.id,
            name=cam.name,
            enabled=cam.enabled,
            groups=list(cam.groups),
            state=state if state in STATES else "unknown",
            fps_in=_float(health.get("fps_in")),
            fps_processed=_float(health.get("fps_out")),
            faces=faces,
            dominant=dominant_label(totals),
            shares={lbl: (n / faces if faces else 0.0) for lbl, n in summary_counts.items()},
        ))
    capacity = capacity_report(h for h, _ in snapshots.values())
    return Overview(window_s=seconds, until=now, cameras=rows, capacity=Capacity(**asdict(capacity)))
