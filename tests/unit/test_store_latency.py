"""End-to-end latency samples written by ``record_results`` (real redis-server)."""

from __future__ import annotations

import time

import pytest

from pipeline.contracts import EmotionResult
from pipeline.store import aggregates
from pipeline.store.redis_store import RedisStore


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix="lat:")
    yield s
    s.close()


def result(camera_id: str, ts: float) -> EmotionResult:
    return EmotionResult(
        camera_id=camera_id, frame_id=0, ts=ts, face_idx=0, bbox=(0, 0, 1, 1), probs=(1 / 7,) * 7, model="fake@1"
    )


def ids(n: int, start: int = 0) -> list[bytes]:
    base = int(time.time() * 1000)
    return [f"{base}-{start + i}".encode() for i in range(n)]


def test_latency_is_capture_to_commit_per_camera_and_global(store: RedisStore) -> None:
    # given faces captured 0.5 s and 2.0 s ago on two cameras
    now = time.time()
    results = [result("cam-a", now - 0.5), result("cam-a", now - 0.5), result("cam-b", now - 2.0)]
    # when they are recorded
    before = time.time()
    store.record_results(results, ids(3))
    elapsed = time.time() - before
    # then each camera has one sample per face, and the global list has all of them
    a = store.latency_samples("cam-a")
    b = store.latency_samples("cam-b")
    assert len(a) == 2 and len(b) == 1
    assert all(0.5 <= v <= 0.5 + elapsed + 0.01 for v in a)
    assert 2.0 <= b[0] <= 2.0 + elapsed + 0.01
    assert sorted(store.latency_samples()) == sorted(a + b)
    assert store.latency_samples(limit=1) == store.latency_samples()[:1]
    assert store.latency_samples("unknown") == []


def test_reclaimed_message_adds_no_second_sample(store: RedisStore) -> None:
    # given one recorded face
    msg = ids(1)
    store.record_results([result("cam-a", time.time() - 0.1)], msg)
    # when the same message id is recorded again (a reclaimed delivery)
    store.record_results([result("cam-a", time.time() - 0.1)], msg)
    # then it was sampled once
    assert len(store.latency_samples("cam-a")) == 1
    assert len(store.latency_samples()) == 1


def test_latency_lists_are_capped_newest_first(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a cap of 5 samples
    monkeypatch.setattr(aggregates, "LATENCY_SAMPLES", 5)
    now = time.time()
    # when 8 faces of growing age are recorded one batch at a time
    for i in range(8):
        store.record_results([result("cam-a", now - i)], ids(1, start=i))
    # then only the 5 newest samples remain, newest first, per camera and globally
    samples = store.latency_samples("cam-a")
    assert len(samples) == 5
    assert samples == sorted(samples, reverse=True)  # older captures were recorded later
    assert samples[-1] >= 3.0
    assert len(store.latency_samples()) == 5


def test_since_selects_samples_committed_in_a_window(store: RedisStore) -> None:
    # given one face recorded before and two after a cut-off time
    store.record_results([result("cam-a", time.time() - 3.0)], ids(1))
    time.sleep(0.01)
    cut = time.time()
    store.record_results([result("cam-a", time.time() - 0.2)] * 2, ids(2, start=1))
    # when the samples since the cut-off are read
    samples = store.latency_samples("cam-a", since=cut)
    # then only the two later ones come back
    assert len(samples) == 2 and all(v < 1.0 for v in samples)
    assert len(store.latency_samples("cam-a")) == 3
    assert len(store.latency_samples(since=cut)) == 2
