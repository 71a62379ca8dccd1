"""``/cameras/{id}/snapshot.jpg``: the latest annotated frame of a camera that opted in.

Off by default (privacy): only cameras registered with ``keep_frames`` have one, written by
the detector at most once a second and expiring after about 30 s (see
:mod:`pipeline.detect.snapshot`).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from pipeline.api.deps import StoreDep

router = APIRouter(prefix="/cameras", tags=["cameras"])


@router.get(
    "/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Snapshots off, or none recent."}},
)
def camera_snapshot(camera_id: str, store: StoreDep) -> Response:
    """Latest frame with face boxes and labels; 404 when the camera keeps no frames or none is recent."""
    cfg = store.get_camera(camera_id)  # 404 for an unknown camera
    # Checked here too: a snapshot written just before the camera opted out is not served.
    jpeg = store.get_snapshot(camera_id) if cfg.keep_frames else None
    if jpeg is None:
        detail = "no recent snapshot" if cfg.keep_frames else "snapshots are off for this camera (keep_frames)"
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)
    # Never cached: it is replaced every second and may show people.
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
