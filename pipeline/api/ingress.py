"""``ApiIngress``: the FastAPI app as a Ray Serve ingress deployment (a thin wrapper)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from pipeline.alerts.runner import AlertRunner
from pipeline.api.app import create_app
from pipeline.api.metrics import camera_capacity
from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore


@serve.deployment(name="ApiIngress")
@serve.ingress()  # late-bound: the app is built per replica in __serve_build_asgi_app__
class ApiIngress:
    """HTTP entry point of the ``emotionpipe`` Serve application.

    Args:
        settings: The settings tree; its ``redis.url`` must be set (the stack sets it).
        detector: Handle of the ``FaceDetector`` deployment (binding it deploys it).
        classifier: Handle of the ``EmotionClassifier`` deployment; serves ``/pipeline/stats``.
    """

    def __init__(
        self,
        settings: Settings,
        detector: DeploymentHandle | None = None,
        classifier: DeploymentHandle | None = None,
    ) -> None:
        self._settings = settings
        self._store = RedisStore.from_settings(settings)
        self._detector = detector
        self._classifier = classifier
        # Every replica runs a runner; a Redis lease lets only one of them evaluate at a time.
        self._alerts: AlertRunner | None = None
        if settings.alerts.enabled:
            self._alerts = AlertRunner(self._store, settings.alerts)
            self._alerts.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built here, not at import time, so each replica owns its Redis connection pool.
        app = create_app(self._settings, self._store)
        classifier = self._classifier

        store = self._store

        @app.get("/pipeline/stats", tags=["health"])
        async def pipeline_stats() -> dict[str, Any]:
            """One classifier replica's consumer counters, the faces stream backlog, and whether
            the pipeline keeps up with its cameras (``capacity``)."""
            stats: dict[str, Any] = {} if classifier is None else await classifier.stats.remote()
            stats["capacity"] = asdict(await asyncio.to_thread(camera_capacity, store))
            return stats

        return app

    def __del__(self) -> None:
        # Serve calls __del__ on graceful replica shutdown: hand the alert lease over first.
        alerts = getattr(self, "_alerts", None)
        if alerts is not None:
            alerts.stop()
        store = getattr(self, "_store", None)
        if store is not None:
            store.close()
