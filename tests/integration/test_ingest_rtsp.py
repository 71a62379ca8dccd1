"""FrameGrabber against a real RTSP server (GStreamer): live reading, server death and recovery."""

from __future__ import annotations

import time

import pytest

from pipeline.ingest.reader import FrameGrabber, StreamState
from pipeline.ingest.sources import validate_source
from pipeline.settings import IngestSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "Zx9-s3cr3t"
# The test server listens on loopback, which the SSRF policy refuses unless allowed.
SETTINGS = IngestSettings(
    allow_loopback=True,
    open_timeout_ms=2000, read_timeout_ms=2000, stall_after_s=3.0, backoff_initial_s=0.2, backoff_max_s=1.0
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reads_live_rtsp_and_recovers_after_server_restart(rtsp_server) -> None:  # type: ignore[no-untyped-def]
    # Given a grabber on a looping RTSP mount (GStreamer serves 640x480)
    source = validate_source(rtsp_server.url("single"), SETTINGS)
    grabber = FrameGrabber(source, SETTINGS)
    try:
        grabber.start()
        assert grabber.wait_state(StreamState.LIVE, timeout=15), grabber.last_error
        time.sleep(1.5)
        stats = grabber.stats()
        assert (stats.width, stats.height) == (640, 480)
        assert stats.fps_in > 10
        before = grabber.latest()
        assert before is not None

        # When the server is killed
        rtsp_server.kill()
        # Then the grabber notices and starts reconnecting
        assert grabber.wait_state(StreamState.RECONNECTING, timeout=SETTINGS.stall_after_s + 5)

        # When the server comes back on the same port
        time.sleep(1.0)
        rtsp_server.start()
        # Then it is live again without intervention, with new frames
        assert grabber.wait_state(StreamState.LIVE, timeout=20), grabber.last_error
        after = grabber.wait_frame(before.frame_id, timeout=5)
        assert after is not None and after.ts > before.ts
        assert grabber.stats().reconnects >= 1
    finally:
        assert grabber.stop(timeout=10)
        if not rtsp_server.running:
            rtsp_server.start()


def test_wrong_path_gives_redacted_error_and_keeps_retrying(rtsp_server) -> None:  # type: ignore[no-untyped-def]
    # Given credentials in the URL and a mount that does not exist
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{rtsp_server.port}/no-such-mount"
    grabber = FrameGrabber(validate_source(url, SETTINGS), SETTINGS)
    try:
        grabber.start()
        # Then it backs off and retries (a camera may come back), never FAILED
        assert grabber.wait_state(StreamState.RECONNECTING, timeout=10)
        deadline = time.monotonic() + 10
        while grabber.stats().reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = grabber.stats()
        assert stats.reconnects >= 2 and stats.state is StreamState.RECONNECTING
        assert stats.frames_in == 0
        assert stats.last_error == f"could not open rtsp://viewer:***@127.0.0.1:{rtsp_server.port}/no-such-mount"
    finally:
        assert grabber.stop(timeout=10)


def test_unreachable_host_gives_redacted_error_and_backs_off() -> None:
    # Given nothing listening on the port
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{_free_port()}/live"
    grabber = FrameGrabber(validate_source(url, SETTINGS), SETTINGS)
    try:
        t0 = time.monotonic()
        grabber.start()
        assert grabber.wait_state(StreamState.RECONNECTING, timeout=10)
        time.sleep(2.0)
        stats = grabber.stats()
        # Then attempts are spaced by backoff (<= 1 s each with full jitter), not a busy loop
        elapsed = time.monotonic() - t0
        assert 1 <= stats.reconnects <= elapsed / 0.1
        assert "could not open rtsp://viewer:***@127.0.0.1:" in stats.last_error
        assert SECRET not in stats.last_error
    finally:
        assert grabber.stop(timeout=10)
