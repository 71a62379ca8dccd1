"""``/metrics``: Prometheus text computed from Redis at scrape time (real redis-server, TestClient)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult, FaceCrop
from pipeline.settings import Settings
from pipeline.store.models import CameraConfig
from pipeline.store.redis_store import RedisStore

TOKEN = "metrics-token"



def _app(redis_url: str, store: RedisStore, **api: object) -> TestClient:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN], **api})  # type: ignore[arg-type]
    return TestClient(create_app(settings, store))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _crop(camera_id: str, frame_id: int) -> FaceCrop:
    return FaceCrop(camera_id=camera_id, frame_id=frame_id, ts=time.time() - 1, face_idx=0, bbox=(0, 0, 48, 48),
                    det_score=0.9, track_id=None, crop=bytes(48 * 48), crop_shape=(48, 48))


def _result(crop: FaceCrop, label: str) -> EmotionResult:
    probs = [0.0] * len(LABELS)
    probs[LABELS.index(label)] = 1.0
    return EmotionResult(camera_id=crop.camera_id, frame_id=crop.frame_id, ts=crop.ts, face_idx=0,
                         bbox=crop.bbox, probs=tuple(probs), model="m@1", track_id=None)


def test_metrics_reflect_health_counters_queue_and_classifier(redis_url: str, store: RedisStore) -> None:
    # given two cameras: one live with reader health, one paused and silent
    store.add_camera(CameraConfig(id="lobby", url="rtsp://admin:s3cret@10.0.0.5/live"))
    store.add_camera(CameraConfig(id="yard", url="rtsp://10.0.0.6/live", enabled=False))
    store.set_health("lobby", {"state": "live", "fps_in": 25.0, "fps_out": 4.9, "frames_in": 1000,
                               "frames_sent": 200, "dropped": 7, "faces_total": 40, "reconnects": 1,
                               "latency_ms": 35.0, "fps_target": 5.0, "inflight": 1})
    # and 6 faces published, 4 of them classified in one batch (inference 20 ms), 2 still queued
    store.ensure_group()
    crops = [_crop("lobby", i) for i in range(6)]
    assert store.publish_faces(crops) == 6
    entries = store.read_faces("c1", 4, None)
    results = [_result(c, "happy") for c in crops[:4]]
    store.record_results(results, [i for i, _ in entries], inference_s=0.02)
    # when Prometheus scrapes
    with _app(redis_url, store) as client:
        r = client.get("/metrics")
    # then
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = _samples(r.text)
    lobby = (("camera", "lobby"),)
    assert m[("ep_camera_fps_in", lobby)] == 25.0
    assert m[("ep_camera_fps_processed", lobby)] == 4.9
    assert m[("ep_camera_frames_processed_total", lobby)] == 200
    assert m[("ep_camera_frames_dropped_total", lobby)] == 7
    assert m[("ep_camera_faces_published_total", lobby)] == 6
    assert m[("ep_camera_faces_classified_total", lobby)] == 4
    assert m[("ep_camera_faces_per_second", lobby)] == pytest.approx(4 / 60)
    assert m[("ep_camera_state", (("camera", "lobby"), ("state", "live")))] == 1
    assert m[("ep_camera_state", (("camera", "lobby"), ("state", "failed")))] == 0
    assert m[("ep_camera_state", (("camera", "yard"), ("state", "unknown")))] == 1
    assert m[("ep_camera_enabled", (("camera", "yard"),))] == 0
    assert m[("ep_camera_up", (("camera", "yard"),))] == 0
    assert m[("ep_faces_stream_lag", ())] == 2
    assert m[("ep_faces_stream_pending", ())] == 0
    assert m[("ep_classifier_batch_size_count", ())] == 1
    assert m[("ep_classifier_batch_size_sum", ())] == 4
    assert m[("ep_classifier_batch_size_bucket", (("le", "2.0"),))] == 0
    assert m[("ep_classifier_batch_size_bucket", (("le", "4.0"),))] == 1
    assert m[("ep_classifier_inference_seconds_bucket", (("le", "0.025"),))] == 1
    assert m[("ep_classifier_inference_seconds_bucket", (("le", "0.01"),))] == 0
    assert m[("ep_classifier_inference_seconds_sum", ())] == pytest.approx(0.02)
    assert m[("ep_e2e_latency_seconds", (("quantile", "0.5"),))] > 0
    # label values are camera ids and states, never URLs or their secrets
    assert "s3cret" not in r.text and "10.0.0.5" not in r.text and "rtsp" not in r.text


def test_metrics_agree_across_replicas_and_follow_the_store(redis_url: str, store: RedisStore) -> None:
    # given two API "replicas" (apps) on the same Redis, each with its own connection
    other_store = RedisStore.from_url(redis_url)
    store.add_camera(CameraConfig(id="cam", url="rtsp://h/x"))
    store.incr_counter("cam", "published", 3)
    with _app(redis_url, store) as a, _app(redis_url, other_store) as b:
        # then both answer the same (latency quantiles are NaN without samples, and NaN != NaN)
        first = _drop_latency(_samples(a.get("/metrics").text))
        assert first == _drop_latency(_samples(b.get("/metrics").text))
        assert first[("ep_camera_faces_published_total", (("camera", "cam"),))] == 3
        # when another process (here: the test) changes Redis, the next scrape shows it
        store.incr_counter("cam", "published", 2)
        store.incr_counter("_all", "dead_letter", 1)
        after = _samples(b.get("/metrics").text)
    other_store.close()
    assert after[("ep_camera_faces_published_total", (("camera", "cam"),))] == 5
    assert after[("ep_dead_letter_total", ())] == 1


def _drop_latency(m: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[object, float]:
    return {k: v for k, v in m.items() if k[0] != "ep_e2e_latency_seconds"}


def test_metrics_follow_auth_reads_and_redis_outage(redis_url: str, store: RedisStore, unused_port: int) -> None:
    with _app(redis_url, store, auth_reads=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    dead = RedisStore.from_url(f"redis://127.0.0.1:{unused_port}/0")
    with _app(redis_url, dead) as client:
        assert client.get("/metrics").status_code == 503
