"""Camera faults on real components: Ray (camera manager + StreamReader actors), Redis, GStreamer RTSP.

The detector is a stand-in Serve deployment (real name and method, one face per frame) so these
tests measure the ingest stage's fault handling, not the detector's speed. A private RTSP
server is killed, frozen (SIGSTOP: the TCP connection stays open and silent) and restarted;
a looping file camera on the same stack must keep producing through every fault. Each test
prints its measured recovery time (``FAULT ... recovery=...``); the notes table collects them.
Health is written once a second, so times are accurate to about a second.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.bench.camera_sim import RtspServer
from pipeline.contracts import APP_NAME
from pipeline.ingest.actor import DETECTOR_DEPLOYMENT
from pipeline.ingest.manager import MANAGER_NAME, start_camera_manager, stop_camera_manager
from pipeline.settings import IngestSettings, RedisSettings, Settings
from pipeline.store.models import CameraConfig
from pipeline.store.redis_store import RedisStore
from tests.support.net import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "Zx9-s3cr3t"
FPS = 5.0
INGEST = IngestSettings(
    allow_loopback=True,  # the test servers listen on 127.0.0.1
    allow_files=True,
    reconcile_interval_s=0.2,
    open_timeout_ms=2000,
    read_timeout_ms=2000,
    stall_after_s=2.0,
    backoff_initial_s=0.2,
    backoff_max_s=1.0,
)




@pytest.fixture(scope="module")
def private_rtsp(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """An RTSP server of our own (the session's is shared with other tests), free to kill."""
    log = tmp_path_factory.mktemp("rtsp-faults") / "rtsp.log"
    server = RtspServer(free_port(), {"single": shared_media / "video" / "single_face.mp4"}, log)
    server.start()
    yield server
    if server.pid is not None:
        try:
            os.kill(server.pid, signal.SIGCONT)  # in case a test stopped it and failed
        except ProcessLookupError:
            pass
    server.stop()


@pytest.fixture(scope="module")
def auth_rtsp(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An RTSP server that requires Basic credentials ``cam:goodpw``; yields ``127.0.0.1:PORT``."""
    import subprocess

    from pipeline.bench.camera_sim import RTSP_SERVER, SYSTEM_PYTHON, _wait_port

    port = free_port()
    log = (tmp_path_factory.mktemp("rtsp-auth") / "rtsp.log").open("wb")
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(port), "--auth", "cam:goodpw",
         f"single={shared_media / 'video' / 'single_face.mp4'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        assert _wait_port("127.0.0.1", port, 15), "auth RTSP server did not start"
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def stack(ray_cluster: Any, redis_server: Any) -> Iterator[tuple[Settings, RedisStore]]:
    """Stand-in detector + the detached camera manager on the session's Ray and Redis (own key prefix)."""
    from ray import serve

    from pipeline.detect.types import DetectResult

    @serve.deployment(name=DETECTOR_DEPLOYMENT, ray_actor_options={"num_cpus": 0.1})
    class StandInDetector:
        def detect_batch(self, frames: list[Any], metas: list[Any], tracks: list[Any]) -> list[DetectResult]:
            return [DetectResult(n_faces=1, boxes=((0, 0, 1, 1),), track_ids=(1,), tracks=t) for t in tracks]

    serve.run(StandInDetector.bind(), name=APP_NAME, route_prefix=None)
    settings = Settings(redis=RedisSettings(url=redis_server.url, prefix="faultcam:"), ingest=INGEST)
    store = RedisStore.from_settings(settings)
    for camera in store.list_cameras():  # a previous run that died half-way
        store.remove_camera(camera.id)
    start_camera_manager(settings, loop_files=True)
    try:
        yield settings, store
    finally:
        stop_camera_manager(settings.ray.namespace)
        store.close()
        serve.delete(APP_NAME)


def health(store: RedisStore, camera_id: str) -> dict[str, Any]:
    return store.get_health(camera_id)


def sent(store: RedisStore, camera_id: str) -> int:
    """Frames processed: sent to detection, or idle (the schedule found nothing to look at; the
    stand-in detector here never reports a full scan, so most frames of these cameras are idle)."""
    h = health(store, camera_id)
    return int(h.get("frames_sent", 0)) + int(h.get("frames_idle", 0))


def live_and_sending(store: RedisStore, camera_id: str, more_than: int = 0) -> bool:
    return health(store, camera_id).get("state") == "live" and sent(store, camera_id) > more_than


def add(store: RedisStore, camera_id: str, url: str) -> None:
    store.add_camera(CameraConfig(id=camera_id, url=url, fps=FPS))


def steady_url(shared_media: Path) -> str:
    return str(shared_media / "video" / "cremad" / "1001_DFA_HAP_XX.mp4")


def test_rtsp_server_killed_and_restarted(
    stack: tuple[Settings, RedisStore], private_rtsp: RtspServer, shared_media: Path
) -> None:
    _, store = stack
    # Given a camera on the private RTSP server and a steady file camera on the same stack
    add(store, "kill-rtsp", private_rtsp.url("single"))
    add(store, "kill-steady", steady_url(shared_media))
    try:
        wait_until(lambda: live_and_sending(store, "kill-rtsp", 5), 60, "the RTSP camera to be live")
        wait_until(lambda: live_and_sending(store, "kill-steady", 5), 30, "the steady camera to be live")
        # When the RTSP server is killed
        t_kill = time.monotonic()
        private_rtsp.kill()
        steady_before = sent(store, "kill-steady")
        # Then the camera goes reconnecting, with the reason in its health
        wait_until(lambda: health(store, "kill-rtsp").get("state") == "reconnecting", 20, "reconnecting")
        t_detect = time.monotonic()
        assert health(store, "kill-rtsp")["last_error"]
        time.sleep(max(0.0, t_kill + 4.0 - time.monotonic()))
        # and the other camera kept producing at its rate meanwhile
        outage = time.monotonic() - t_kill
        assert sent(store, "kill-steady") - steady_before >= 0.6 * FPS * (outage - 1.5)
        # When the server comes back on the same port
        before = sent(store, "kill-rtsp")
        private_rtsp.start()
        t_restart = time.monotonic()
        # Then the camera is live again without operator action
        wait_until(lambda: live_and_sending(store, "kill-rtsp", before), 30, "the camera to be live again")
        recovery = time.monotonic() - t_restart
        h = health(store, "kill-rtsp")
        assert int(h["reconnects"]) >= 1
        print(f"\nFAULT rtsp-server-killed detect={t_detect - t_kill:.1f}s recovery={recovery:.1f}s "
              f"(server up -> frames flowing) reconnects={h['reconnects']}")
        assert recovery < 20
    finally:
        if not private_rtsp.running:
            private_rtsp.start()
        store.remove_camera("kill-rtsp")
        store.remove_camera("kill-steady")


def test_stream_that_stalls_without_closing(
    stack: tuple[Settings, RedisStore], private_rtsp: RtspServer, shared_media: Path
) -> None:
    _, store = stack
    add(store, "stall-rtsp", private_rtsp.url("single"))
    add(store, "stall-steady", steady_url(shared_media))
    assert private_rtsp.pid is not None
    stopped = False
    try:
        wait_until(lambda: live_and_sending(store, "stall-rtsp", 5), 60, "the RTSP camera to be live")
        wait_until(lambda: live_and_sending(store, "stall-steady", 5), 30, "the steady camera to be live")
        # When the server freezes: its sockets stay open but nothing more arrives (no FIN, no RST)
        os.kill(private_rtsp.pid, signal.SIGSTOP)
        stopped = True
        t_stall = time.monotonic()
        steady_before = sent(store, "stall-steady")
        # Then the stall watchdog gives up on the silent connection and reconnects
        wait_until(lambda: health(store, "stall-rtsp").get("state") == "reconnecting", 20, "stall detected")
        t_detect = time.monotonic()
        h = health(store, "stall-rtsp")
        assert int(h["stalls"]) >= 1 or "stalled" in str(h["last_error"]) or "no frame" in str(h["last_error"])
        time.sleep(max(0.0, t_stall + 5.0 - time.monotonic()))
        outage = time.monotonic() - t_stall
        assert sent(store, "stall-steady") - steady_before >= 0.6 * FPS * (outage - 1.5)
        # When the server wakes up
        before = sent(store, "stall-rtsp")
        os.kill(private_rtsp.pid, signal.SIGCONT)
        stopped = False
        t_resume = time.monotonic()
        wait_until(lambda: live_and_sending(store, "stall-rtsp", before), 30, "the camera to be live again")
        recovery = time.monotonic() - t_resume
        print(f"\nFAULT rtsp-stall detect={t_detect - t_stall:.1f}s (stall_after_s={INGEST.stall_after_s}) "
              f"recovery={recovery:.1f}s")
        assert t_detect - t_stall < INGEST.stall_after_s + 5
        assert recovery < 20
    finally:
        if stopped:
            os.kill(private_rtsp.pid, signal.SIGCONT)
        store.remove_camera("stall-rtsp")
        store.remove_camera("stall-steady")


def test_bad_cameras_fail_alone_with_redacted_errors(
    stack: tuple[Settings, RedisStore], private_rtsp: RtspServer, auth_rtsp: str, shared_media: Path, tmp_path: Path
) -> None:
    _, store = stack
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(100_000))
    bad = {
        # nothing listens on the port (connection refused)
        "bad-refused": f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/live",
        # the server answers, the path does not exist (404)
        "bad-path": f"rtsp://viewer:{SECRET}@127.0.0.1:{private_rtsp.port}/no-such-mount?token={SECRET}",
        # the server wants credentials and these are wrong (401 Unauthorized)
        "bad-auth": f"rtsp://cam:{SECRET}@{auth_rtsp}/single",
        # a name that does not resolve (accepted at registration: the camera may come later)
        "bad-dns": f"rtsp://viewer:{SECRET}@camera.invalid/live",
        # a file that is not a video
        "bad-file": str(garbage),
    }
    # Given a steady camera, one with the right credentials, and bad cameras registered beside them
    add(store, "bad-steady", steady_url(shared_media))
    add(store, "good-auth", f"rtsp://cam:goodpw@{auth_rtsp}/single")
    wait_until(lambda: live_and_sending(store, "bad-steady", 5), 30, "the steady camera to be live")
    wait_until(lambda: live_and_sending(store, "good-auth", 5), 60, "the camera with credentials to be live")
    # (written straight to the registry, as an old entry or another tool could: the manager re-checks)
    for camera_id, url in {**bad, "bad-ssrf": "http://169.254.169.254/latest/meta-data/"}.items():
        add(store, camera_id, url)
    try:
        t0 = time.monotonic()
        steady_before = sent(store, "bad-steady")

        # Then every bad camera ends up reconnecting (live sources) or failed, with a redacted reason
        def all_settled() -> dict[str, Any] | None:
            states = {c: health(store, c) for c in [*bad, "bad-ssrf"]}
            ok = all(h.get("state") in ("reconnecting", "failed") and h.get("last_error") for h in states.values())
            return states if ok else None

        states = wait_until(all_settled, 30, "all bad cameras to report their failure")
        time.sleep(max(0.0, t0 + 6.0 - time.monotonic()))
        states = {c: health(store, c) for c in [*bad, "bad-ssrf"]}
        for camera_id, h in states.items():
            assert SECRET not in str(h), camera_id
            assert int(h.get("frames_sent", 0)) + int(h.get("frames_idle", 0)) == 0, camera_id
        assert states["bad-file"]["state"] == "failed"
        assert states["bad-ssrf"]["state"] == "failed" and "metadata" in states["bad-ssrf"]["last_error"]
        for live_source in ("bad-refused", "bad-path", "bad-auth", "bad-dns"):
            assert states[live_source]["state"] == "reconnecting", live_source
        # And the steady camera was not slowed down by them
        elapsed = time.monotonic() - t0
        produced = sent(store, "bad-steady") - steady_before
        print(f"\nFAULT bad-cameras steady camera sent {produced} frames in {elapsed:.1f}s "
              f"({produced / elapsed:.1f} fps, target {FPS}); errors: "
              + "; ".join(f"{c}={h['last_error'][:70]!r}" for c, h in states.items()))
        assert produced >= 0.6 * FPS * (elapsed - 1.5)
        assert health(store, "good-auth")["state"] == "live"
    finally:
        for camera_id in [*bad, "bad-ssrf", "bad-steady", "good-auth"]:
            store.remove_camera(camera_id)


def _reader_processes() -> int:
    import psutil

    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or ())
        except psutil.Error:
            continue
        if cmd.startswith("ray::StreamReader"):
            count += 1
    return count


def test_detector_replica_killed_stream_continues(
    stack: tuple[Settings, RedisStore], shared_media: Path
) -> None:
    import ray

    _, store = stack
    add(store, "det-cam", steady_url(shared_media))
    try:
        wait_until(lambda: int(health(store, "det-cam").get("faces_total", 0)) > 5, 30, "faces detected")
        [replica] = [
            a for a in ray.util.list_named_actors(all_namespaces=True)
            if "FaceDetector" in a["name"] and a["name"].startswith("SERVE_REPLICA")
        ]
        # When the only detector replica is killed
        ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
        t_kill = time.monotonic()
        faces_at_kill = int(health(store, "det-cam")["faces_total"])
        # Then Serve replaces it and detections resume; the camera never stopped reading
        wait_until(lambda: int(health(store, "det-cam")["faces_total"]) > faces_at_kill + 5, 90, "detections to resume")
        recovery = time.monotonic() - t_kill
        h = health(store, "det-cam")
        print(f"\nFAULT detector-replica-killed recovery={recovery:.1f}s detect_errors={h['detect_errors']} "
              f"dropped={h['dropped']} state={h['state']}")
        assert h["state"] == "live"
    finally:
        store.remove_camera("det-cam")


def test_camera_manager_killed_cameras_are_readopted(
    stack: tuple[Settings, RedisStore], private_rtsp: RtspServer, shared_media: Path
) -> None:
    import ray

    settings, store = stack
    cameras = {"adopt-rtsp": private_rtsp.url("single"), "adopt-file": steady_url(shared_media)}
    for camera_id, url in cameras.items():
        add(store, camera_id, url)
    try:
        for camera_id in cameras:
            wait_until(lambda c=camera_id: live_and_sending(store, c, 5), 60, f"{camera_id} to be live")
        manager = ray.get_actor(MANAGER_NAME, namespace=settings.ray.namespace)
        # When the manager actor dies (its readers are owned by it and die with it)
        ray.kill(manager, no_restart=False)
        t_kill = time.monotonic()
        time.sleep(1.0)
        updated = {c: float(health(store, c).get("updated_at", 0)) for c in cameras}
        # Then Ray restarts it (max_restarts=-1), it re-reads the registry and restarts every reader
        def readopted() -> bool:
            try:
                running = ray.get(manager.status.remote(), timeout=5)["running"]
            except Exception:  # noqa: BLE001 - still restarting
                return False
            if sorted(running) != sorted(cameras):
                return False
            return all(
                live_and_sending(store, c) and float(health(store, c).get("updated_at", 0)) > updated[c] + 1
                for c in cameras
            )

        wait_until(readopted, 90, "the cameras to be re-adopted", step=0.5)
        recovery = time.monotonic() - t_kill
        # and no reader was left behind by the old manager (each camera is read exactly once)
        wait_until(lambda: _reader_processes() == math.ceil(len(cameras) / settings.ingest.cameras_per_reader), 30,
                   "the readers of these cameras only")
        print(f"\nFAULT camera-manager-killed recovery={recovery:.1f}s readers={_reader_processes()}")
        assert recovery < 60
    finally:
        for camera_id in cameras:
            store.remove_camera(camera_id)
