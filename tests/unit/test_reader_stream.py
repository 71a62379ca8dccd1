"""CameraStream: fps sampling, bounded in-flight detection, track hand-back, health (no Ray)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.detect.tracker import TrackerState
from pipeline.detect.types import FrameMeta
from pipeline.ingest.reader import Frame, FrameGrabber, GrabberStats, StreamState
from pipeline.ingest.sources import validate_source
from pipeline.ingest.stream import CameraStream, downsize
from pipeline.settings import IngestSettings

SETTINGS = IngestSettings(allow_files=True, max_inflight=2, max_width=960)


@dataclass
class Result:
    n_faces: int
    tracks: Any
    publish_refused: bool = False
    skipped_stale: bool = False


class FakeGrabber:
    """Hands out whatever frame the test sets; records start/stop."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self.started = self.stopped = False
        self.next_id = 0

    def push(self, image: np.ndarray | None = None) -> Frame:
        image = image if image is not None else np.zeros((48, 64, 3), np.uint8)
        self.frame = Frame(image=image, frame_id=self.next_id, ts=time.time(), mono=time.monotonic())
        self.next_id += 1
        return self.frame

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float = 5.0) -> bool:
        self.stopped = True
        return True

    def latest(self) -> Frame | None:
        return self.frame

    def stats(self) -> GrabberStats:
        return GrabberStats(
            state=StreamState.LIVE,
            frames_in=self.next_id,
            fps_in=0.0,
            corrupt=0,
            read_failures=0,
            reconnects=0,
            stalls=0,
            resolution_changes=0,
            loops=0,
            width=64,
            height=48,
            last_frame_ts=self.frame.ts if self.frame else 0.0,
            last_error="",
            last_error_ts=0.0,
        )


@dataclass
class GatedDetector:
    """detect_fn whose calls complete only when the test releases them."""

    calls: list[tuple[np.ndarray, Any, Any]] = field(default_factory=list)
    gates: list[asyncio.Future[Any]] = field(default_factory=list)

    def __call__(self, frame: np.ndarray, meta: Any, tracks: Any) -> asyncio.Future[Any]:
        self.calls.append((frame, meta, tracks))
        gate: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        return gate


def test_saturated_detector_drops_frames_and_keeps_newest_tracks() -> None:
    async def scenario() -> None:
        # Given a stream with max_inflight=2 and a detector that does not answer yet
        grabber, detector = FakeGrabber(), GatedDetector()
        stream = CameraStream("cam1", grabber, detector, fps=5, settings=SETTINGS, frame_id_base=100)
        # When four new frames are sampled
        for _ in range(4):
            grabber.push()
            stream.tick()
        # Then two are in flight and two were dropped, not queued
        assert len(detector.calls) == 2
        health = stream.health()
        assert (health["frames_sent"], health["dropped"], health["inflight"]) == (2, 2, 2)
        metas = [c[1] for c in detector.calls]
        assert isinstance(metas[0], FrameMeta) and [m.frame_id for m in metas] == [100, 101]
        assert metas[0].camera_id == "cam1"
        assert isinstance(detector.calls[0][2], TrackerState)
        # When results come back out of order, the newer frame's tracks win
        newer, older = TrackerState(next_id=9), TrackerState(next_id=5)
        detector.gates[1].set_result(Result(2, newer))
        await asyncio.sleep(0)
        detector.gates[0].set_result(Result(1, older))
        await asyncio.sleep(0.01)
        assert stream.tracks is newer
        health = stream.health()
        assert health["faces"] == 2 and health["faces_total"] == 3 and health["inflight"] == 0
        # and the next frame carries them
        grabber.push()
        stream.tick()
        assert detector.calls[-1][2] is newer

    asyncio.run(scenario())


def test_stale_skips_are_counted_and_do_not_replace_tracks() -> None:
    async def scenario() -> None:
        # given two frames in flight, both sent with the same tracker state
        grabber, detector = FakeGrabber(), GatedDetector()
        stream = CameraStream("cam1", grabber, detector, fps=1000, settings=SETTINGS)
        for _ in range(2):
            grabber.push()
            stream.tick()
        fresh = TrackerState(next_id=7)
        # when the first is detected and the second was skipped by the detector as stale
        detector.gates[0].set_result(Result(1, fresh))
        await asyncio.sleep(0)
        detector.gates[1].set_result(Result(0, TrackerState(), skipped_stale=True))
        await asyncio.sleep(0.01)
        # then the skip is counted, and the detected frame's tracks and face count stay
        health = stream.health()
        assert health["detect_skipped"] == 1 and health["detect_errors"] == 0
        assert stream.tracks is fresh and health["faces"] == 1 and health["inflight"] == 0

    asyncio.run(scenario())


def test_same_frame_is_not_sent_twice() -> None:
    async def scenario() -> None:
        grabber, detector = FakeGrabber(), GatedDetector()
        stream = CameraStream("cam1", grabber, detector, fps=5, settings=SETTINGS)
        assert stream.tick() is False  # no frame yet
        grabber.push()
        assert stream.tick() is True
        assert stream.tick() is False  # camera slower than our fps: nothing new
        assert stream.health()["dropped"] == 0

    asyncio.run(scenario())


def test_wide_frames_are_downsized_before_detection() -> None:
    async def scenario() -> None:
        grabber, detector = FakeGrabber(), GatedDetector()
        stream = CameraStream("cam1", grabber, detector, fps=5, settings=SETTINGS)
        grabber.push(np.zeros((1080, 1920, 3), np.uint8))
        stream.tick()
        assert detector.calls[0][0].shape == (540, 960, 3)

    asyncio.run(scenario())
    small = np.zeros((100, 200), np.uint8)
    assert downsize(small, 960) is small


def test_detect_errors_and_timeouts_are_counted_and_free_the_slot() -> None:
    async def scenario() -> None:
        grabber = FakeGrabber()

        async def failing(frame: np.ndarray, meta: Any, tracks: Any) -> Any:
            raise RuntimeError("replica died")

        stream = CameraStream("cam1", grabber, failing, fps=5, settings=SETTINGS)
        grabber.push()
        stream.tick()
        await asyncio.sleep(0.01)
        health = stream.health()
        assert health["detect_errors"] == 1 and "replica died" in str(health["last_error"])
        assert health["inflight"] == 0

        async def hanging(frame: np.ndarray, meta: Any, tracks: Any) -> Any:
            await asyncio.sleep(60)

        slow = CameraStream("cam2", grabber, hanging, fps=5, settings=SETTINGS, detect_timeout_s=0.05)
        grabber.push()
        slow.tick()
        await asyncio.sleep(0.2)
        assert slow.health()["detect_errors"] == 1 and slow.health()["inflight"] == 0
        assert "timed out" in str(slow.health()["last_error"])

    asyncio.run(scenario())


def test_run_samples_a_real_file_at_the_camera_fps(shared_media: Path) -> None:
    # Given a 30 fps file as a camera sampled at 5 fps with a fast detector
    source = validate_source(str(shared_media / "video" / "single_face.mp4"), SETTINGS)
    grabber = FrameGrabber(source, SETTINGS, loop_files=True)
    seen: list[Any] = []
    health_writes: list[dict[str, Any]] = []

    async def detect(frame: np.ndarray, meta: Any, tracks: Any) -> Result:
        seen.append(meta)
        await asyncio.sleep(0.01)
        return Result(1, tracks)

    def sink(camera_id: str, health: dict[str, Any]) -> None:
        assert camera_id == "file-cam"
        health_writes.append(health)

    stream = CameraStream(
        "file-cam", grabber, detect, fps=5, settings=SETTINGS, health_sink=sink, health_interval_s=0.5
    )

    async def scenario() -> None:
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(2.2)
        stream.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    # Then about 5 frames per second were sent, in frame-id order, none dropped
    assert 8 <= len(seen) <= 13
    assert [m.frame_id for m in seen] == sorted(m.frame_id for m in seen)
    final = health_writes[-1]
    assert final["state"] == "stopped" and final["dropped"] == 0
    assert final["frames_in"] > 3 * final["frames_sent"]  # 30 fps in, 5 fps out
    live = [h for h in health_writes if h["state"] == "live"]
    assert live and 3.5 <= max(h["fps_out"] for h in live) <= 6.5
    assert all(isinstance(v, (str, int, float)) for h in health_writes for v in h.values())
    assert len(health_writes) >= 4
    assert grabber.state is StreamState.STOPPED


def test_health_sink_failure_does_not_stop_the_stream() -> None:
    grabber = FakeGrabber()
    sends: list[Any] = []

    async def detect(frame: np.ndarray, meta: Any, tracks: Any) -> Result:
        sends.append(meta)
        return Result(0, tracks)

    def sink(camera_id: str, health: dict[str, Any]) -> None:
        raise ConnectionError("redis down")

    stream = CameraStream("cam1", grabber, detect, fps=20, settings=SETTINGS, health_sink=sink, health_interval_s=0.05)

    async def scenario() -> None:
        task = asyncio.create_task(stream.run())
        for _ in range(6):
            grabber.push()
            await asyncio.sleep(0.06)
        stream.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert len(sends) >= 4 and grabber.started and grabber.stopped
