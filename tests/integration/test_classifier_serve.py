"""EmotionClassifier on real Ray Serve and a real Redis: replicas consume the faces stream.

The engine is a fake (fixed probabilities) so the test checks the wiring, not the model:
replica-named consumers, the background loop, stats, health and the autoscaling metric.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytest

from pipeline.classify.deployment import ClassifierWorker, EmotionClassifier, classifier_options
from pipeline.contracts import FaceCrop
from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FixedEngine:
    name = "fixed@1"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        out = np.full((len(crops), 7), 0.05, dtype=np.float32)
        out[:, 3] = 0.7  # happy
        return out


class FakeEngineClassifier(EmotionClassifier.func_or_class):  # type: ignore[name-defined,misc]
    """The real deployment class with the engine swapped for a fixed one."""

    def __init__(self, settings: Settings) -> None:
        self._worker = ClassifierWorker(settings, engine=FixedEngine())
        self._worker.start()


def test_replicas_consume_the_stream(ray_cluster: Any, redis_url: str) -> None:
    import ray.cloudpickle
    from ray import serve

    # Replica processes cannot import this test module: ship its classes by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = Settings(redis={"url": redis_url, "prefix": "it:"}, classify={"num_cpus": 0.25, "block_ms": 20})
    store = RedisStore.from_url(redis_url, "it:")
    opts = classifier_options(settings)
    app = serve.deployment(FakeEngineClassifier, name="EmotionClassifier").options(num_replicas=2, **opts)
    handle = serve.run(app.bind(settings), name="classifier-it", route_prefix=None)
    try:
        # given 30 crops published by a producer
        now = time.time()
        crops = [
            FaceCrop("cam1", i, now, 0, (0, 0, 48, 48), 0.9, bytes(48 * 48), (48, 48), track_id=i % 3)
            for i in range(30)
        ]
        assert store.publish_faces(crops) == 30
        # when the replicas' background loops run
        deadline = time.monotonic() + 30
        while store.summary("cam1", 60).faces < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        # then every crop was classified exactly once and acknowledged
        summary = store.summary("cam1", 60)
        assert summary.faces == 30 and summary.dominant == "happy" and summary.distinct_tracks == 3
        assert summary.model == "fixed@1"
        assert store.queue_lag() == 0
        stats = handle.stats.remote().result()
        assert stats["consumer"].startswith("cls-") and stats["alive"] is True
        assert handle.record_autoscaling_stats.remote().result() == {"queue_lag": 0.0}
        handle.check_health.remote().result()
        names = {c["name"] for c in store.client.xinfo_consumers(store.keys.faces, "classifiers")}
        assert names and all(n.startswith(b"cls-") for n in names)
    finally:
        serve.delete("classifier-it")
        store.close()
