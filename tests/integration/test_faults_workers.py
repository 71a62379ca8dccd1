"""Worker faults on real Redis with real OS processes: a classifier killed mid-batch, one that
stalls past the reclaim time and comes back, and a Redis restart (clean and crash) under load.

The consumers are the production :class:`~pipeline.classify.consumer.FaceConsumer` with a tiny
engine (the model's speed is not under test). "Exactly once" is checked on the aggregates:
the faces counted equal the crops published, nothing pending, nothing dead-lettered.
Each test prints its measured recovery time (``FAULT ... recovery=...``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.classify.consumer import FaceConsumer
from pipeline.contracts import LABELS, FaceCrop
from pipeline.settings import ClassifySettings
from pipeline.store.keys import GLOBAL_SCOPE
from pipeline.store.redis_store import RedisStore
from tests.support.net import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFIX = "faultwk:"
CLAIM_IDLE_MS = 1000


class TinyEngine:
    name = "tiny@1"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        out = np.full((len(crops), 7), 0.05, dtype=np.float32)
        out[:, LABELS.index("happy")] = 0.7
        return out


def crops(n: int, camera_id: str = "cam-w", start: int = 0) -> list[FaceCrop]:
    now = time.time()
    return [
        FaceCrop(camera_id=camera_id, frame_id=start + i, ts=now, face_idx=0, bbox=(0, 0, 48, 48), det_score=0.9,
                 crop=bytes([120]) * (48 * 48), crop_shape=(48, 48), track_id=1)
        for i in range(n)
    ]




def settings(**overrides: Any) -> ClassifySettings:
    base: dict[str, Any] = {"batch_size": 64, "block_ms": 50, "claim_idle_ms": CLAIM_IDLE_MS, "max_deliveries": 5}
    base.update(overrides)
    return ClassifySettings(**base)


# A consumer process whose engine signals when it holds a batch, then waits `hold_s`
# (forever: to be killed mid-batch; a few seconds: a replica stalled past claim_idle_ms).
_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from pipeline.classify.consumer import FaceConsumer
    from pipeline.settings import ClassifySettings
    from pipeline.store.redis_store import RedisStore

    url, prefix, marker, hold_s = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])

    class HoldingEngine:
        name = "tiny@1"
        def predict(self, crops):
            marker.write_text(str(len(crops)))
            time.sleep(hold_s)
            out = np.full((len(crops), 7), 0.05, dtype=np.float32)
            out[:, 3] = 0.7
            return out

    store = RedisStore.from_url(url, prefix)
    consumer = FaceConsumer(store, HoldingEngine(), ClassifySettings(batch_size=64, block_ms=50), "doomed")
    while consumer.run_once() == 0:
        pass
    print("recorded", consumer.stats.recorded, "duplicates", consumer.stats.duplicates, flush=True)
    """
)


@pytest.fixture()
def store(redis_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_url, PREFIX)
    yield s
    s.close()


def _start_worker(redis_url: str, marker: Path, hold_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, redis_url, PREFIX, str(marker), str(hold_s)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _drain(consumer: FaceConsumer, store: RedisStore, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer.run_once()
        if store.queue_lag() == 0:
            return
    pytest.fail(f"backlog not drained in {timeout}s: {store.queue_stats()}")


def _assert_exactly_once(store: RedisStore, n: int) -> None:
    assert store.summary("cam-w", 120).faces == n  # every crop counted, none twice
    stats = store.queue_stats()
    assert stats["pending"] == 0 and stats["lag"] == 0
    assert store.dead_letters() == []
    assert store.get_counters(GLOBAL_SCOPE).get("dead_letter", 0) == 0


def test_classifier_killed_mid_batch_is_reclaimed_exactly_once(
    redis_url: str, store: RedisStore, tmp_path: Path
) -> None:
    # Given 200 crops on the stream and a classifier process holding a batch of them in inference
    store.ensure_group()
    n = 200
    assert store.publish_faces(crops(n)) == n
    marker = tmp_path / "holding"
    doomed = _start_worker(redis_url, marker, hold_s=3600)
    try:
        wait_until(marker.exists, 60, "the worker to take a batch", step=0.05)
        held = int(marker.read_text())
        assert store.queue_stats()["pending"] == held > 0
        # When it is killed (SIGKILL: no cleanup, no XACK)
        doomed.kill()
        doomed.wait(10)
        t_kill = time.monotonic()
    finally:
        if doomed.poll() is None:
            doomed.kill()
    # Then a surviving consumer reclaims the dead one's pending entries after claim_idle_ms
    survivor = FaceConsumer(store, TinyEngine(), settings(), "survivor", claim_interval_s=0.1)
    _drain(survivor, store, timeout=30)
    recovery = time.monotonic() - t_kill
    print(f"\nFAULT classifier-killed held={held} reclaimed={survivor.stats.claimed} "
          f"recovery={recovery:.1f}s (claim_idle_ms={CLAIM_IDLE_MS})")
    assert survivor.stats.claimed >= held
    # and every crop is counted exactly once in the aggregates
    _assert_exactly_once(store, n)


def test_classifier_stalled_past_reclaim_counts_once_when_it_wakes(
    redis_url: str, store: RedisStore, tmp_path: Path
) -> None:
    # Given a classifier process that holds a batch longer than claim_idle_ms (a GC pause, a slow GPU)
    store.ensure_group()
    n = 100
    store.publish_faces(crops(n))
    marker = tmp_path / "holding"
    slow = _start_worker(redis_url, marker, hold_s=3.0)
    try:
        wait_until(marker.exists, 60, "the worker to take a batch", step=0.05)
        held = int(marker.read_text())
        # When another consumer reclaims and records its batch meanwhile
        survivor = FaceConsumer(store, TinyEngine(), settings(), "survivor", claim_interval_s=0.1)
        _drain(survivor, store, timeout=30)
        assert survivor.stats.claimed >= held
        # and the slow one wakes up and records the same entries
        out, _ = slow.communicate(timeout=60)
    finally:
        if slow.poll() is None:
            slow.kill()
    # Then its results are recognised as duplicates: nothing is counted twice
    print(f"\nFAULT classifier-stalled held={held} slow-worker: {out.strip().splitlines()[-1]}")
    assert f"recorded 0 duplicates {held}" in out
    _assert_exactly_once(store, n)


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A Redis of our own with AOF on, to stop, kill and restart on the same data dir."""
    from pipeline.runtime.redis_server import EmbeddedRedis

    server = EmbeddedRedis(free_port(), tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_redis_restart_keeps_registry_and_aggregates_and_consumer_resumes(private_redis: Any) -> None:
    from pipeline.store.models import CameraConfig

    store = RedisStore.from_url(private_redis.url, PREFIX)
    consumer = FaceConsumer(store, TinyEngine(), settings(), "resilient", claim_interval_s=0.1)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run_forever, args=(stop,), daemon=True)
    try:
        # Given a registry, a running consumer and classified faces
        store.add_camera(CameraConfig(id="cam-w", url="rtsp://10.0.0.9/live", name="Door"))
        store.ensure_group()
        worker.start()
        total = 0
        store.publish_faces(crops(100))
        total += 100
        wait_until(lambda: store.summary("cam-w", 300).faces == total, 30, "the first crops to be classified",
                   step=0.05)
        figures: list[str] = []
        for how in ("stop", "kill"):
            registry = store.list_cameras()
            summary = store.summary("cam-w", 300)
            if how == "kill":
                time.sleep(1.5)  # appendfsync everysec: what was written over a second ago is on disk
            # When Redis goes away (clean SIGTERM, then a crash with SIGKILL) ...
            errors_before = consumer.stats.errors
            (private_redis.stop if how == "stop" else private_redis.kill)()
            wait_until(lambda e=errors_before: consumer.stats.errors > e, 30, "the consumer to notice the outage",
                       step=0.05)
            time.sleep(1.0)
            # ... and comes back on the same data dir
            private_redis.start()
            t_up = time.monotonic()
            # Then the registry and the aggregates are intact (AOF) ...
            assert store.list_cameras() == registry
            assert store.summary("cam-w", 300).faces == summary.faces == total
            # ... and the consumer resumes by itself with new work
            store.publish_faces(crops(50, start=total))
            total += 50
            wait_until(lambda n=total: store.summary("cam-w", 300).faces == n, 30, "new crops after the restart",
                       step=0.05)
            recovery = time.monotonic() - t_up
            figures.append(f"{how}: recovery={recovery:.1f}s")
            assert store.queue_lag() == 0
        print(f"\nFAULT redis-restart {'; '.join(figures)} consumer errors={consumer.stats.errors} "
              "(redis up -> new crops classified)")
        _assert_exactly_once(store, total)
    finally:
        stop.set()
        worker.join(10)
        store.close()
