"""Ray Serve deployment ``EmotionClassifier``: a thin wrapper around :class:`ClassifierWorker`.

The classifier pulls work from the Redis faces stream instead of receiving requests:
each replica runs a :class:`~pipeline.classify.consumer.FaceConsumer` loop in a daemon
thread. The consumer name is the Serve replica id, so when a replica dies its pending
entries are reclaimed (XAUTOCLAIM) by the survivors. ``record_autoscaling_stats``
reports the group's backlog for a lag-based autoscaling policy.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from ray import serve

from pipeline.classify.backends import ClassifierBackend, create_backend
from pipeline.classify.consumer import FaceConsumer
from pipeline.classify.exceptions import ClassifierDied
from pipeline.settings import Settings
from pipeline.store.exceptions import StoreError
from pipeline.store.redis_store import RedisStore

log = logging.getLogger(__name__)


def _replica_name() -> str:
    try:
        return f"cls-{serve.get_replica_context().replica_id.unique_id}"
    except Exception:  # noqa: BLE001 - outside a Serve replica (tests, CLI): any unique name
        return f"cls-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def classifier_options(settings: Settings) -> dict[str, Any]:
    """``Deployment.options(...)`` arguments derived from the settings (for the app builder)."""
    c = settings.classify
    return {
        "ray_actor_options": {"num_cpus": c.num_cpus, "num_gpus": c.num_gpus},
        # The replica serves only stats/health calls; its real work runs in the thread.
        "max_ongoing_requests": 4,
        "health_check_period_s": 5.0,
        "graceful_shutdown_timeout_s": 10.0,
    }


class ClassifierWorker:
    """Owns the store, the engine and the consume-loop thread (no Ray needed).

    Args:
        settings: The settings tree (``redis.url`` must be set).
        consumer_name: Consumer name in the group; default a unique per-process name.
        engine: Classifier to use; default the backend ``settings.classify`` names.
        store: Store to use; default one connected from the settings.
    """

    def __init__(
        self,
        settings: Settings,
        consumer_name: str | None = None,
        engine: ClassifierBackend | None = None,
        store: RedisStore | None = None,
    ) -> None:
        if engine is None:
            engine = create_backend(settings.classify)  # imports torch/onnxruntime (or deepface) now
        self.store = store or RedisStore.from_settings(settings)
        self.engine: ClassifierBackend = engine
        self.consumer = FaceConsumer(self.store, engine, settings.classify, consumer_name or _replica_name())
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.consumer.run_forever, args=(self._stop,), name="face-consumer", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("classifier %s consuming with model %s on %s", self.consumer.name, self.engine.name, self.runtime)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to stop and wait for the current batch to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def runtime(self) -> str:
        # Every backend says; bare engines that unit tests inject may not.
        return str(getattr(self.engine, "runtime", "unknown"))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def check_health(self) -> None:
        """Raise when the consume loop is gone (Serve then replaces the replica)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            raise ClassifierDied(f"consume loop of {self.consumer.name} died: {self.consumer.stats.last_error}")

    def stats(self) -> dict[str, Any]:
        """Consumer counters plus the stream's backlog (``queue`` is absent while Redis is down)."""
        out: dict[str, Any] = {
            "consumer": self.consumer.name,
            "model": self.engine.name,
            "runtime": self.runtime,  # shows an int8 -> fp32 fallback without reading replica logs
            "alive": self._thread.is_alive(),
            **self.consumer.snapshot(),
        }
        try:
            out["queue"] = self.store.queue_stats()
        except StoreError as exc:  # stats must answer even when Redis is down
            out["queue_error"] = f"{type(exc).__name__}: {exc}"
        return out

    def queue_lag(self) -> int:
        return self.store.queue_lag()


@serve.deployment(name="EmotionClassifier")
class EmotionClassifier:
    """Serve replica running one face consumer in a background thread."""

    def __init__(self, settings: Settings | dict[str, Any]) -> None:
        if isinstance(settings, dict):
            settings = Settings(**settings)
        self._worker = ClassifierWorker(settings)
        self._worker.start()

    def stats(self) -> dict[str, Any]:
        """Counters of this replica's consumer and the stream backlog."""
        return self._worker.stats()

    def check_health(self) -> None:
        """Serve's health probe: fails when the consume thread died."""
        self._worker.check_health()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom autoscaling metric: faces waiting or in flight in the consumer group."""
        try:
            return {"queue_lag": float(self._worker.queue_lag())}
        except StoreError:  # Redis down: report nothing new rather than fail
            return {}

    def __del__(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.stop()
