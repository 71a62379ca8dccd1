"""CameraManager + StreamReader actors on a real local Ray, real Redis and a stand-in FaceDetector.

The detector here is a trivial Serve deployment with the real name and method so that the
ingest wiring (handle lookup, in-flight limit, health in Redis, add/remove at run time) is
tested without the detection stage.
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.contracts import APP_NAME
from pipeline.ingest.actor import DETECTOR_DEPLOYMENT
from pipeline.ingest.manager import start_camera_manager, stop_camera_manager
from pipeline.settings import IngestSettings, RedisSettings, Settings
from pipeline.store.models import CameraConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def stand_in_detector(ray_cluster: Any) -> Iterator[None]:
    from ray import serve

    from pipeline.detect.types import DetectResult

    @serve.deployment(name=DETECTOR_DEPLOYMENT, ray_actor_options={"num_cpus": 0.1})
    class StandInDetector:
        def detect_batch(self, frames: list[Any], metas: list[Any], tracks: list[Any]) -> list[DetectResult]:
            return [DetectResult(n_faces=1, boxes=((0, 0, 1, 1),), track_ids=(1,), tracks=t) for t in tracks]

    serve.run(StandInDetector.bind(), name=APP_NAME, route_prefix=None)
    try:
        yield
    finally:
        serve.delete(APP_NAME)


def _reader_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if " ".join(p.info["cmdline"] or ()).startswith("ray::StreamReader")]


def test_manager_starts_and_stops_readers_from_the_registry(
    stand_in_detector: None, redis_url: str, shared_media: Path
) -> None:
    import ray

    from pipeline.store.redis_store import RedisStore

    settings = Settings(
        redis=RedisSettings(url=redis_url),
        ingest=IngestSettings(allow_files=True, reconcile_interval_s=0.2),
    )
    store = RedisStore.from_settings(settings)
    namespace = settings.ray.namespace
    try:
        # Given the manager is running
        manager = start_camera_manager(settings, loop_files=True)
        assert ray.get(manager.status.remote(), timeout=30)["running"] == []
        # When a file camera is registered
        clip = shared_media / "video" / "single_face.mp4"
        store.add_camera(CameraConfig(id="demo", url=str(clip), fps=5))
        # Then a reader streams it: health in Redis shows live frames and faces
        assert _wait(lambda: store.get_health("demo").get("frames_sent", 0) >= 5, 30), store.get_health("demo")
        health = store.get_health("demo")
        assert health["state"] == "live" and health["faces"] == 1
        assert ray.get(manager.status.remote(), timeout=10)["running"] == ["demo"]
        # A second reference to the detached manager is the same actor
        assert start_camera_manager(settings)._actor_id == manager._actor_id

        # When a camera with a disallowed scheme is added, it is reported, not started
        store.add_camera(CameraConfig(id="bad", url="ftp://u:Zx9-s3cr3t@h/x"))
        assert _wait(lambda: store.get_health("bad").get("state") == "failed", 10)
        assert "Zx9-s3cr3t" not in store.get_health("bad")["last_error"]

        # When the camera is removed, its reader stops
        store.remove_camera("demo")
        assert _wait(lambda: ray.get(manager.status.remote(), timeout=10)["running"] == [], 15)
        sent = store.get_health("demo").get("frames_sent", 0)
        time.sleep(1.0)
        assert store.get_health("demo").get("frames_sent", 0) == sent
    finally:
        assert stop_camera_manager(namespace)
        store.close()


def test_cameras_share_a_reader_process_and_survive_its_death(
    stand_in_detector: None, redis_url: str, shared_media: Path
) -> None:
    import os
    import signal

    import ray

    from pipeline.store.redis_store import RedisStore

    settings = Settings(
        redis=RedisSettings(url=redis_url),
        ingest=IngestSettings(allow_files=True, reconcile_interval_s=0.2, cameras_per_reader=2),
    )
    store = RedisStore.from_settings(settings)
    clip = str(shared_media / "video" / "single_face.mp4")
    cameras = ["pool-1", "pool-2", "pool-3"]
    try:
        manager = start_camera_manager(settings, loop_files=True)
        for camera_id in cameras:
            store.add_camera(CameraConfig(id=camera_id, url=clip, fps=5))

        def all_sending(after: dict[str, int]) -> bool:
            return all(store.get_health(c).get("frames_sent", 0) > after.get(c, 0) + 3 for c in cameras)

        # Given three cameras at two per reader: two reader processes read them
        assert _wait(lambda: all_sending({}), 30), {c: store.get_health(c) for c in cameras}
        assert len(_reader_pids()) == 2
        # When one camera is removed, its neighbour in the same process keeps streaming
        store.remove_camera("pool-1")
        cameras.remove("pool-1")
        sent = {c: store.get_health(c).get("frames_sent", 0) for c in cameras}
        assert _wait(lambda: ray.get(manager.status.remote(), timeout=10)["running"] == cameras, 15)
        assert _wait(lambda: all_sending(sent), 15)
        # When a reader process dies, each of its cameras is read again (by a new reader)
        for pid in _reader_pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        restarted = {c: int(store.get_health(c).get("frames_sent", 0)) for c in cameras}
        # (a new reader counts from zero: any count below the one at the kill, then growing, is a restart)
        assert _wait(lambda: all(0 < int(store.get_health(c).get("frames_sent", 0)) < restarted[c]
                                 for c in cameras), 60), {c: store.get_health(c) for c in cameras}
        assert len(_reader_pids()) == 1
    finally:
        assert stop_camera_manager(settings.ray.namespace)
        for camera_id in cameras:
            store.remove_camera(camera_id)
        store.close()
