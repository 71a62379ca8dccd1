"""The whole product on real services: Redis, a local Ray with the Serve app, a GStreamer RTSP server.

Cameras are registered through the HTTP API exactly as a user would; the test then waits
(bounded) for the aggregates to show what the streams contain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipeline.runtime.stack import deploy, undeploy, with_section
from pipeline.settings import Settings
from tests.support.net import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_S = 180.0  # first deploy loads models in 3 processes on 2 cores; steady state is seconds
POLL_S = 2.0


TOKEN = "e2e-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}




@pytest.fixture(scope="module")
def stack(ray_cluster: Any, redis_server: Any) -> Iterator[tuple[Settings, str]]:
    """The Serve app and the camera manager deployed on the session's Ray and Redis."""
    settings = Settings()
    settings = with_section(settings, "redis", url=redis_server.url)
    settings = with_section(settings, "api", host="127.0.0.1", port=free_port(), tokens=(TOKEN,))
    # One replica each: the machine has 2 cores and the test needs throughput, not elasticity.
    settings = with_section(settings, "detect", max_replicas=1)
    settings = with_section(settings, "classify", max_replicas=1)
    # The test RTSP server listens on 127.0.0.1.
    settings = with_section(settings, "ingest", reconcile_interval_s=0.5, allow_loopback=True)
    # Earlier modules may have left Serve running on the shared cluster with other HTTP
    # options, which serve.start would silently keep; start from a clean Serve.
    from ray import serve

    serve.shutdown()
    url = deploy(settings)
    wait_until(lambda: _get(f"{url}/readyz").status_code == 200, 60, "the API to be ready", step=POLL_S)
    yield settings, url
    undeploy(settings)


def _get(url: str, **params: Any) -> httpx.Response:
    try:
        return httpx.get(url, params=params, timeout=10.0)
    except httpx.HTTPError as exc:
        return httpx.Response(599, json={"error": type(exc).__name__})


def _summary(url: str, camera_id: str) -> dict[str, Any]:
    r = _get(f"{url}/cameras/{camera_id}/summary", window=60)
    return r.json() if r.status_code == 200 else {}


def _running(camera_id: str) -> bool:
    import ray

    from pipeline.ingest.manager import MANAGER_NAME

    manager = ray.get_actor(MANAGER_NAME, namespace="emotionpipe")
    return camera_id in ray.get(manager.status.remote(), timeout=30)["running"]


def test_happy_stream_reads_happy_and_empty_stream_reads_no_faces(
    stack: tuple[Settings, str], rtsp_server: Any
) -> None:
    _, url = stack
    # given two RTSP cameras: an actor smiling, and an empty scene
    for cam, mount in (("hap", "hap"), ("empty", "noface")):
        body = {"id": cam, "url": rtsp_server.url(mount), "fps": 5}
        r = httpx.post(f"{url}/cameras", json=body, headers=AUTH, timeout=10)
        assert r.status_code == 201, r.text

    # when the pipeline has run for a while
    def happy_dominant() -> dict[str, Any] | None:
        s = _summary(url, "hap")
        return s if s.get("faces", 0) >= 5 and s.get("dominant") == "happy" else None

    # then the happy camera shows faces with `happy` dominant ...
    s = wait_until(happy_dominant, WAIT_S, "faces with `happy` dominant on camera hap", step=POLL_S)
    assert s["shares"]["happy"] > 0.5
    assert s["distinct_tracks"] >= 1
    assert s["model"]

    # ... and the empty scene, whose frames were read and sent to detection all along, shows none
    def empty_read() -> dict[str, Any] | None:
        h = _get(f"{url}/cameras/empty/health").json().get("health", {})
        return h if h.get("state") == "live" and int(h.get("frames_sent", 0)) >= 10 else None

    wait_until(empty_read, 60, "the empty camera to send 10 frames to detection", step=POLL_S)
    empty = _summary(url, "empty")
    assert empty["faces"] == 0 and empty["dominant"] is None

    # when a camera is removed, then its reader stops
    assert _running("hap")
    assert httpx.delete(f"{url}/cameras/hap", headers=AUTH, timeout=10).status_code == 204
    wait_until(lambda: not _running("hap"), 30, "the reader of hap to stop", step=POLL_S)
    assert _get(f"{url}/cameras/hap").status_code == 404
    assert _running("empty")
