"""HTTP API load test (Locust): camera registration churn and dashboard-style summary queries.

Run against a running stack (``emotionpipe up --detach``)::

    EP_API_TOKEN=$(emotionpipe token) .venv/bin/locust -f load_tests/locustfile.py --headless \\
        -u 50 -r 10 -t 60s --host http://127.0.0.1:8000 --csv load_tests/results/locust

Two user classes: ``Viewer`` (weight 9) polls what the dashboard polls (camera list, health,
summaries over several windows, time series, metrics); ``Operator`` (weight 1) registers a
camera, reads it back, pauses and resumes it and removes it. Operator cameras are registered
*paused* with private, unreachable addresses, so the load stays on the API and Redis and no
reader actors are started. Viewers read ``LOCUST_CAMERAS`` (comma separated ids, default: the
cameras registered when the test starts).
"""

from __future__ import annotations

import itertools
import os
import random
import uuid

from locust import HttpUser, between, events, task

TOKEN = os.environ.get("EP_API_TOKEN", "")
AUTH = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
WINDOWS = ("60", "300", "3600")
_cameras: list[str] = []
_counter = itertools.count()


@events.test_start.add_listener
def _discover_cameras(environment, **_kwargs):  # type: ignore[no-untyped-def]
    configured = [c for c in os.environ.get("LOCUST_CAMERAS", "").split(",") if c]
    if configured:
        _cameras.extend(configured)
        return
    import httpx

    host = environment.host or "http://127.0.0.1:8000"
    response = httpx.get(f"{host}/cameras", headers=AUTH, timeout=10)
    response.raise_for_status()
    _cameras.extend(c["id"] for c in response.json() if not c["id"].startswith("locust-"))


class Viewer(HttpUser):
    """A dashboard tab: polls every couple of seconds."""

    weight = 9
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.headers.update(AUTH)

    @task(3)
    def camera_list(self) -> None:
        self.client.get("/cameras")

    @task(6)
    def summary(self) -> None:
        if _cameras:
            cam = random.choice(_cameras)
            self.client.get(f"/cameras/{cam}/summary", params={"window": random.choice(WINDOWS)},
                            name="/cameras/[id]/summary")

    @task(2)
    def series(self) -> None:
        if _cameras:
            self.client.get(f"/cameras/{random.choice(_cameras)}/series", params={"window": "300"},
                            name="/cameras/[id]/series")

    @task(2)
    def health(self) -> None:
        if _cameras:
            self.client.get(f"/cameras/{random.choice(_cameras)}/health", name="/cameras/[id]/health")

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics")


class Operator(HttpUser):
    """Registration churn: add (paused), read, pause/resume, remove."""

    weight = 1
    wait_time = between(1, 2)

    def on_start(self) -> None:
        self.client.headers.update(AUTH)

    @task
    def churn(self) -> None:
        cam = f"locust-{uuid.uuid4().hex[:8]}-{next(_counter)}"
        body = {"id": cam, "url": f"rtsp://user:pw@10.255.{random.randint(0, 255)}.{random.randint(1, 254)}/s",
                "fps": 5, "enabled": False, "name": "locust"}
        with self.client.post("/cameras", json=body, name="POST /cameras", catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            if "pw@" in r.text:
                r.failure("credentials leaked in the response")
        self.client.get(f"/cameras/{cam}", name="/cameras/[id]")
        self.client.patch(f"/cameras/{cam}", json={"name": "locust (renamed)"}, name="PATCH /cameras/[id]")
        self.client.delete(f"/cameras/{cam}", name="DELETE /cameras/[id]")
