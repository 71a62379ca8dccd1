"""``/metrics``: Prometheus text exposition, computed from Redis on every scrape."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Per-camera fps, frames processed/dropped, faces/s, stream states; queue lag, classifier batches.

    Correct with several API replicas: nothing is counted in this process.
    """
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
