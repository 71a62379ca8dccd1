"""FrameGrabber: latest-frame reading of real video files, and failure handling with fake captures."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.ingest.exceptions import SourceUnavailable
from pipeline.ingest.reader import FrameGrabber, StreamState
from pipeline.ingest.sources import Source, SourceKind, validate_source
from pipeline.settings import IngestSettings

FILES = IngestSettings(allow_files=True)
# Fast failure handling for fakes: tiny backoff, short stall threshold.
FAST = IngestSettings(
    allow_files=True, allow_loopback=True, stall_after_s=0.3, backoff_initial_s=0.01, backoff_max_s=0.05, open_timeout_ms=200
)
SECRET = "Zx9-s3cr3t"
LIVE_SRC = Source(SourceKind.STREAM, "rtsp://cam:***@fake/live", "rtsp", f"rtsp://cam:{SECRET}@fake/live")


@pytest.fixture()
def single_face(shared_media: Path) -> Source:
    # 640x360, 30 fps, 72 frames (2.4 s)
    return validate_source(str(shared_media / "video" / "single_face.mp4"), FILES)


@pytest.fixture()
def grabbers() -> Iterator[list[FrameGrabber]]:
    made: list[FrameGrabber] = []
    yield made
    for grabber in made:
        assert grabber.stop(timeout=5.0), "grabber threads did not stop"


class FakeCapture:
    """Scripted capture: each call to read() takes the next action of ``script``.

    Actions: an ndarray (a frame), None (corrupt frame: ok but no image), False (read
    fails), "block" (hang until released, like a stalled RTSP server). When the script
    runs out, it keeps producing ``tail`` frames every ``period`` seconds.
    """

    def __init__(self, script: list[Any], tail: np.ndarray | None = None, period: float = 0.01) -> None:
        self.script = list(script)
        self.tail = tail
        self.period = period
        self.release_event = threading.Event()
        self.released = False

    def read(self) -> tuple[bool, Any]:
        if self.script:
            action = self.script.pop(0)
        elif self.tail is not None:
            time.sleep(self.period)
            return True, self.tail.copy()
        else:
            return False, None
        if isinstance(action, str) and action == "block":
            self.release_event.wait(30)
            return False, None
        if isinstance(action, tuple) and action[0] == "slow":
            # A read that blocks until FFmpeg's read timeout, then returns a frame drained
            # from the decoder's queue (what a silent RTSP server really produces).
            time.sleep(action[1])
            return True, frame(value=77)
        if action is False:
            return False, None
        if action is None:
            return True, None
        return True, action.copy()

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def frame(w: int = 64, h: int = 48, value: int = 0) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def factory_of(items: list[Any]) -> tuple[Callable[[Source, IngestSettings], FakeCapture], list[FakeCapture]]:
    """A capture factory that hands out ``items`` in order (FakeCapture or an exception to raise)."""
    opened: list[FakeCapture] = []

    def factory(source: Source, settings: IngestSettings) -> FakeCapture:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        opened.append(item)
        return item

    return factory, opened


# --------------------------------------------------------------------------- real files
def test_file_source_is_read_at_its_native_rate(single_face: Source, grabbers: list[FrameGrabber]) -> None:
    # Given a 30 fps file read like a camera (paced), looping
    grabber = FrameGrabber(single_face, FILES, loop_files=True)
    grabbers.append(grabber)
    # When it runs for a while
    grabber.start()
    assert grabber.wait_state(StreamState.LIVE, timeout=5)
    time.sleep(1.5)
    # Then frames arrive at about 30 fps with their timestamps and real pixels
    stats = grabber.stats()
    assert 24 <= stats.fps_in <= 36
    assert (stats.width, stats.height) == (640, 360)
    latest = grabber.latest()
    assert latest is not None and latest.image.shape == (360, 640, 3)
    assert abs(latest.ts - time.time()) < 1.0
    assert not latest.image.flags.writeable  # shared between consumers


def test_latest_frame_semantics_skip_frames_for_a_slow_consumer(
    single_face: Source, grabbers: list[FrameGrabber]
) -> None:
    # Given a grabber on a 30 fps file
    grabber = FrameGrabber(single_face, FILES, loop_files=True)
    grabbers.append(grabber)
    grabber.start()
    first = grabber.wait_frame(-1, timeout=5)
    assert first is not None
    # When a consumer only looks every 0.5 s
    time.sleep(0.5)
    second = grabber.latest()
    # Then it gets the newest frame, not the next buffered one
    assert second is not None and second.frame_id - first.frame_id >= 10
    assert second.mono - first.mono >= 0.4
    # and wait_frame returns only frames newer than the one given
    newer = grabber.wait_frame(second.frame_id, timeout=2)
    assert newer is not None and newer.frame_id > second.frame_id


def test_file_eof_stops_without_loop(single_face: Source, grabbers: list[FrameGrabber]) -> None:
    # Given an unpaced, non-looping file source
    grabber = FrameGrabber(single_face, FILES, pace_files=False)
    grabbers.append(grabber)
    # When it reaches the end of the file
    grabber.start()
    # Then it has read every frame once and stopped
    assert grabber.wait_state(StreamState.STOPPED, timeout=10)
    stats = grabber.stats()
    assert stats.frames_in == 72 and stats.loops == 0 and stats.reconnects == 0
    assert stats.last_error == ""


def test_file_loops_when_asked(single_face: Source, grabbers: list[FrameGrabber]) -> None:
    grabber = FrameGrabber(single_face, FILES, loop_files=True, pace_files=False)
    grabbers.append(grabber)
    grabber.start()
    deadline = time.monotonic() + 10
    while grabber.stats().loops < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = grabber.stats()
    assert stats.loops >= 2 and stats.frames_in >= 144
    assert stats.state is StreamState.LIVE and stats.reconnects == 0


def test_unreadable_file_fails(tmp_path: Path, grabbers: list[FrameGrabber]) -> None:
    # Given a file that is not a video
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    grabber = FrameGrabber(validate_source(str(bad), FILES), FAST)
    grabbers.append(grabber)
    # When it is opened, then the grabber gives up at once: a file will not heal
    grabber.start()
    assert grabber.wait_state(StreamState.FAILED, timeout=5)
    assert "could not open" in grabber.last_error


# --------------------------------------------------------------------------- fakes
def test_read_failures_reconnect_with_backoff_and_recover(grabbers: list[FrameGrabber]) -> None:
    # Given a live stream whose server dies, refuses two reconnects, then comes back
    dying = FakeCapture([frame()] * 3 + [False] * 5)
    back = FakeCapture([], tail=frame(value=7))
    down = SourceUnavailable(f"could not open {LIVE_SRC.redacted}")
    factory, opened = factory_of([dying, down, down, back])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory, rng=random.Random(1))
    grabbers.append(grabber)
    states: list[StreamState] = []
    grabber.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not states or states[-1] is not grabber.state:
            states.append(grabber.state)
        latest = grabber.latest()
        if latest is not None and latest.image[0, 0, 0] == 7:
            break
        time.sleep(0.002)
    # Then it went LIVE -> RECONNECTING -> LIVE on its own, counting what happened
    assert grabber.wait_state(StreamState.LIVE, timeout=1)
    assert StreamState.RECONNECTING in states
    stats = grabber.stats()
    assert stats.reconnects == 3 and stats.read_failures >= 3
    assert dying.released
    assert SECRET not in stats.last_error


def test_stall_abandons_the_capture_and_reconnects(grabbers: list[FrameGrabber]) -> None:
    # Given a stream that hangs inside read() (server stalled, socket open)
    stalled = FakeCapture([frame(), frame(), "block"])
    healthy = FakeCapture([], tail=frame(value=9))
    factory, _ = factory_of([stalled, healthy])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory)
    grabbers.append(grabber)
    try:
        grabber.start()
        # When no frame arrives for stall_after_s (0.3 s)
        assert grabber.wait_state(StreamState.RECONNECTING, timeout=3)
        # Then the stall is counted and a new connection brings it back live
        assert grabber.wait_state(StreamState.LIVE, timeout=3)
        assert grabber.stats().stalls == 1
        assert "stalled" in grabber.last_error and SECRET not in grabber.last_error
        latest = grabber.wait_frame(-1, timeout=2)
        assert latest is not None
        time.sleep(0.1)
        assert grabber.latest().image[0, 0, 0] == 9  # type: ignore[union-attr]
    finally:
        stalled.release_event.set()
    # The abandoned capture is released once its read() returns
    deadline = time.monotonic() + 2
    while not stalled.released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stalled.released


def test_frames_drained_after_read_timeouts_do_not_hide_a_stall(grabbers: list[FrameGrabber]) -> None:
    # Given a silent stream whose reads each block for the read timeout and then return one
    # stale frame from the decoder (regression: these kept the stream "live" for several timeouts)
    settings = IngestSettings(read_timeout_ms=200, stall_after_s=0.3, backoff_initial_s=0.01, backoff_max_s=0.05)
    silent = FakeCapture([frame(value=1)] + [("slow", 0.2)] * 50)
    factory, _ = factory_of([silent, FakeCapture([], tail=frame(value=9))])
    grabber = FrameGrabber(LIVE_SRC, settings, capture_factory=factory)
    grabbers.append(grabber)
    grabber.start()
    # When it runs, then the stale frames are failed reads, never published, and it reconnects
    assert grabber.wait_state(StreamState.RECONNECTING, timeout=3)
    assert grabber.wait_state(StreamState.LIVE, timeout=3)
    assert grabber.stats().read_failures >= 1
    time.sleep(0.1)
    assert grabber.latest().image[0, 0, 0] == 9  # type: ignore[union-attr]


def test_no_first_frame_counts_as_stall(grabbers: list[FrameGrabber]) -> None:
    silent = FakeCapture(["block"])
    factory, _ = factory_of([silent, FakeCapture([], tail=frame())])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory)
    grabbers.append(grabber)
    try:
        grabber.start()
        assert grabber.state is StreamState.CONNECTING
        # open budget 0.2 s + stall 0.3 s
        assert grabber.wait_state(StreamState.LIVE, timeout=3)
        assert "no frame within" in grabber.last_error
    finally:
        silent.release_event.set()


def test_corrupt_frames_are_counted_and_resolution_changes_tolerated(grabbers: list[FrameGrabber]) -> None:
    # Given a stream with a corrupt frame and a resolution switch (camera reconfigured)
    script: list[Any] = [frame(64, 48), None, frame(64, 48), np.zeros((2, 2), np.float32), frame(128, 96)]
    cap = FakeCapture(script, tail=frame(128, 96))
    factory, _ = factory_of([cap])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory)
    grabbers.append(grabber)
    grabber.start()
    deadline = time.monotonic() + 3
    while grabber.stats().frames_in < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = grabber.stats()
    # Then it stayed live on the same connection
    assert stats.state is StreamState.LIVE and stats.reconnects == 0
    assert stats.corrupt == 2 and stats.resolution_changes == 1
    assert (stats.width, stats.height) == (128, 96)


def test_max_attempts_gives_up(grabbers: list[FrameGrabber]) -> None:
    factory, _ = factory_of([SourceUnavailable(f"could not open {LIVE_SRC.redacted}")])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory, max_attempts=3)
    grabbers.append(grabber)
    grabber.start()
    assert grabber.wait_state(StreamState.FAILED, timeout=5)
    assert "giving up after 3" in grabber.last_error
    assert grabber.stats().reconnects == 2


def test_unexpected_factory_error_never_shows_its_message(grabbers: list[FrameGrabber]) -> None:
    # A backend error text may quote the URL with its password: only the type is kept.
    factory, _ = factory_of([RuntimeError(f"boom rtsp://cam:{SECRET}@fake/live")])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory, max_attempts=2)
    grabbers.append(grabber)
    grabber.start()
    assert grabber.wait_state(StreamState.FAILED, timeout=5)
    stats = grabber.stats()
    assert stats.last_error and SECRET not in stats.last_error


def test_real_open_capture_error_is_redacted(grabbers: list[FrameGrabber]) -> None:
    # Given an RTSP URL with a password and nothing listening (port 1 refuses at once)
    src = validate_source(f"rtsp://admin:{SECRET}@127.0.0.1:1/live", IngestSettings(allow_loopback=True))
    grabber = FrameGrabber(src, FAST, max_attempts=2)
    grabbers.append(grabber)
    grabber.start()
    # Then it retries, gives up, and the error names the redacted URL only
    assert grabber.wait_state(StreamState.FAILED, timeout=5)
    assert grabber.last_error.startswith("rtsp://admin:***@127.0.0.1:1/live")


def test_stop_is_bounded_even_when_read_hangs() -> None:
    hung = FakeCapture([frame(), "block"])
    factory, _ = factory_of([hung])
    grabber = FrameGrabber(LIVE_SRC, IngestSettings(stall_after_s=60), capture_factory=factory)
    grabber.start()
    assert grabber.wait_frame(-1, timeout=2) is not None
    time.sleep(0.05)
    t0 = time.monotonic()
    # The connection thread is stuck in read(): stop() reports it but does not hang
    assert grabber.stop(timeout=0.3) is False
    assert time.monotonic() - t0 < 1.0
    assert grabber.state is StreamState.STOPPED
    hung.release_event.set()
    deadline = time.monotonic() + 2
    while not hung.released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hung.released


def test_backoff_is_full_jitter_within_bounds() -> None:
    settings = IngestSettings(backoff_initial_s=0.5, backoff_max_s=4.0)
    grabber = FrameGrabber(LIVE_SRC, settings, rng=random.Random(0))
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0)]:
        delays = [grabber._backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spread over the whole range, not fixed


def test_start_is_idempotent_and_stop_before_start_is_safe() -> None:
    factory, _ = factory_of([FakeCapture([], tail=frame())])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory)
    assert grabber.stop(timeout=0.1)
    grabber.start()
    grabber.start()
    assert grabber.wait_state(StreamState.LIVE, timeout=2)
    assert grabber.stop(timeout=2)
    assert grabber.state is StreamState.STOPPED


class GrabRetrieveCapture(FakeCapture):
    """A live 50 fps camera that counts how many frames were converted (retrieve)."""

    def __init__(self) -> None:
        super().__init__([], tail=frame(), period=0.02)
        self.grabs = 0
        self.retrieves = 0

    def grab(self) -> bool:
        time.sleep(self.period)
        self.grabs += 1
        return True

    def retrieve(self) -> tuple[bool, Any]:
        self.retrieves += 1
        return True, frame(value=self.grabs % 256)


def test_live_frames_that_cannot_be_sampled_are_not_converted(grabbers: list[FrameGrabber]) -> None:
    # Given a 50 fps live stream sampled at 5 fps
    cap = GrabRetrieveCapture()
    factory, _ = factory_of([cap])
    grabber = FrameGrabber(LIVE_SRC, FAST, capture_factory=factory, sample_fps=5.0)
    grabbers.append(grabber)
    grabber.start()
    assert grabber.wait_state(StreamState.LIVE, timeout=5)
    time.sleep(1.5)
    # Then every frame is grabbed and counted, but only ~10/s (twice the sampling rate) converted,
    stats = grabber.stats()
    assert cap.grabs > 40 and stats.frames_in >= cap.grabs - 2
    assert cap.retrieves <= cap.grabs / 3
    # and the newest converted frame is never older than half a sample period (+ one frame).
    latest = grabber.latest()
    assert latest is not None and time.monotonic() - latest.mono < 0.1 + 0.05
    assert grabber.fps_in() > 30
