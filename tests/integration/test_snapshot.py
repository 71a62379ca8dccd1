"""Opt-in frame snapshots: the detector's writer, the real FaceDetector replica class, the API route.

Real Redis through the real store, a real face photo and the shipped detector; no Ray
(the replica class is instantiated directly, as Serve would in a replica).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.detect.snapshot import DEFAULT_TTL_S, MAX_WIDTH, SnapshotWriter, annotate
from pipeline.detect.types import FrameMeta
from pipeline.settings import Settings
from pipeline.store.models import CameraConfig
from pipeline.store.redis_store import RedisStore

pytestmark = pytest.mark.integration

TOKEN = "snapshot-test-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now



@pytest.fixture()
def client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN]})  # type: ignore[arg-type]
    with TestClient(create_app(settings, store)) as c:
        yield c


def _camera(store: RedisStore, camera_id: str, keep_frames: bool) -> None:
    store.add_camera(CameraConfig(id=camera_id, url="rtsp://127.0.0.1/x", keep_frames=keep_frames))


def _frame(width: int = 1280, height: int = 720) -> np.ndarray:
    frame = np.full((height, width, 3), 90, np.uint8)
    frame.setflags(write=False)  # like a frame from Ray's object store
    return frame


def _classified(store: RedisStore, camera_id: str, track_id: int, label: str) -> None:
    probs = [0.02] * len(LABELS)
    probs[LABELS.index(label)] = 0.88
    result = EmotionResult(camera_id=camera_id, frame_id=1, ts=time.time(), face_idx=0, bbox=(10, 10, 50, 50),
                           probs=tuple(probs), model="emonet-s@1", track_id=track_id)
    store.record_results([result], [f"{int(time.time() * 1000)}-{track_id}".encode()])


def test_cameras_that_did_not_opt_in_keep_no_frames(store: RedisStore, client: TestClient) -> None:
    # given a camera with the default keep_frames=False
    _camera(store, "private", keep_frames=False)
    writer = SnapshotWriter(store)
    # when frames with faces are offered, then nothing is stored and the API has nothing
    assert writer.offer("private", _frame(), [(100, 100, 80, 80)], [1]) is False
    assert store.get_snapshot("private") is None
    r = client.get("/cameras/private/snapshot.jpg")
    assert r.status_code == 404 and "keep_frames" in r.json()["detail"]
    # and an unknown camera is neither stored nor served
    assert writer.offer("ghost", _frame(), [], []) is False
    assert client.get("/cameras/ghost/snapshot.jpg").status_code == 404


def test_opted_in_camera_gets_one_short_lived_annotated_jpeg(store: RedisStore, client: TestClient) -> None:
    # given an opted-in camera whose track 7 has been classified as happy
    _camera(store, "lobby", keep_frames=True)
    _classified(store, "lobby", 7, "happy")
    clock = FakeClock()
    writer = SnapshotWriter(store, clock=clock)
    # when a 1280x720 frame with two faces (one classified, one new) is offered
    assert writer.offer("lobby", _frame(), [(100, 100, 200, 200), (800, 300, 150, 150)], [7, 8]) is True
    # then one JPEG is kept, scaled to the snapshot width, with a TTL and no history
    jpeg = store.get_snapshot("lobby")
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == MAX_WIDTH and img.shape[0] == 360
    ttl = store.client.ttl(store.keys.snapshot("lobby"))
    assert 0 < ttl <= DEFAULT_TTL_S
    # the boxes were drawn (pixels inside the scaled box outline differ from the flat frame)
    assert not np.allclose(img[50:52, 50:150].astype(int), 90, atol=12)
    assert store.track_dominants("lobby", [7, 8]) == {7: "happy"}
    # and the API serves exactly those bytes, uncached
    r = client.get("/cameras/lobby/snapshot.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == jpeg and r.headers["cache-control"] == "no-store"
    # when the next frame comes within the minimum interval, then it is not written
    assert writer.offer("lobby", _frame(), [], []) is False
    clock.now += 1.5
    assert writer.offer("lobby", _frame(), [], []) is True
    assert store.get_snapshot("lobby") != jpeg  # overwritten, not appended


def test_opting_out_stops_snapshots_at_once_in_the_api_and_soon_in_the_detector(
    store: RedisStore, client: TestClient
) -> None:
    # given an opted-in camera with a snapshot
    _camera(store, "door", keep_frames=True)
    clock = FakeClock()
    writer = SnapshotWriter(store, clock=clock)
    assert writer.offer("door", _frame(), [], [])
    # when the camera opts out in the registry
    store.update_camera(store.get_camera("door").model_copy(update={"keep_frames": False}))
    # then the API stops serving the old frame at once
    assert client.get("/cameras/door/snapshot.jpg").status_code == 404
    # and the detector stops writing once its flag cache expires
    clock.now += 60
    assert writer.offer("door", _frame(), [], []) is False


def test_snapshot_reads_follow_the_read_auth_rule(redis_url: str, store: RedisStore) -> None:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN], "auth_reads": True})  # type: ignore[arg-type]
    _camera(store, "cam", keep_frames=True)
    store.set_snapshot("cam", annotate(_frame(64, 48), [], []), 30)
    with TestClient(create_app(settings, store)) as c:
        assert c.get("/cameras/cam/snapshot.jpg").status_code == 401
        ok = c.get("/cameras/cam/snapshot.jpg", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


def test_detector_replica_stores_snapshots_of_opted_in_cameras(
    redis_url: str, store: RedisStore, shared_media: Path
) -> None:
    from pipeline.detect.deployment import FaceDetector

    # given the detector replica class (as Serve builds it) and two cameras, one opted in
    replica = FaceDetector.func_or_class(Settings(redis={"url": redis_url}))  # type: ignore[arg-type, attr-defined]
    _camera(store, "on", keep_frames=True)
    _camera(store, "off", keep_frames=False)
    frame = cv2.imread(str(shared_media / "images" / "single_face.jpg"))
    assert frame is not None
    # when both send the same real face photo
    on = replica.detect(frame, FrameMeta("on", 1, time.time()), None)
    off = replica.detect(frame, FrameMeta("off", 1, time.time()), None)
    # then both detect the face, but only the opted-in camera has a snapshot
    assert on.n_faces >= 1 and off.n_faces >= 1
    assert store.get_snapshot("on") is not None
    assert store.get_snapshot("off") is None
