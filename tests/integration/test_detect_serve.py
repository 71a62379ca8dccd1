"""The FaceDetector Serve deployment on a real local Ray with a real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest

pytest.importorskip("retinaface")

from pipeline.contracts import FaceCrop  # noqa: E402
from pipeline.detect.types import DetectResult, FrameMeta  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_serve_replica_detects_and_publishes(ray_cluster: object, redis_url: str, shared_media: Path) -> None:
    from ray import serve

    from pipeline.detect.deployment import FaceDetector
    from pipeline.store.redis_store import RedisStore

    # given: one replica with the options the app builder would set
    # (a generous frame age: the first request through a fresh handle may be slow on a loaded machine)
    settings = Settings(redis={"url": redis_url}, detect={"max_frame_age_s": 60})  # type: ignore[arg-type]
    options = {"ray_actor_options": {"num_cpus": settings.detect.num_cpus}, "max_ongoing_requests": 2}
    app = FaceDetector.options(**options).bind(settings)  # type: ignore[attr-defined]
    handle = serve.run(app, name="detect-test", route_prefix=None)
    try:
        frame = cv2.imread(str(shared_media / "images" / "multi_face.jpg"))
        # when: a frame, its metadata and no tracks travel through the object store
        result = handle.detect.remote(frame, FrameMeta("cam-s", 1, time.time()), None).result(timeout_s=120)
        # then: the result and its TrackerState come back, the crops are on the stream
        assert isinstance(result, DetectResult)
        assert result.n_faces == 5 and result.track_ids == (1, 2, 3, 4, 5)
        assert result.tracks.next_id == 6 and not result.publish_refused
        store = RedisStore.from_url(redis_url, settings.redis.prefix)
        store.ensure_group()
        crops = [FaceCrop.decode(p) for _, p in store.read_faces("t", count=10, block_ms=None)]
        assert sorted(c.face_idx for c in crops) == [0, 1, 2, 3, 4]
        store.close()
    finally:
        serve.delete("detect-test")
