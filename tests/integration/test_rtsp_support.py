"""The test RTSP server itself: real H.264 over RTSP, looping short files, restartable on one port."""

from __future__ import annotations

import os
import time
from typing import Any

import cv2
import pytest

pytestmark = pytest.mark.integration


def _open(url: str) -> Any:
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
    assert cap.isOpened(), url
    return cap


def test_short_clip_loops_past_its_end(rtsp_server: Any) -> None:
    # given the 1.9 s happy clip; when read for 4.5 s; then frames keep coming at ~30 fps
    cap = _open(rtsp_server.url("hap"))
    frames, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 4.5:
        ok, frame = cap.read()
        assert ok, f"stream ended after {frames} frames"
        assert frame.shape == (480, 640, 3)
        frames += 1
    cap.release()
    assert frames >= 90


def test_server_restarts_on_the_same_port(rtsp_server: Any) -> None:
    cap = _open(rtsp_server.url("noface"))
    assert cap.read()[0]
    rtsp_server.kill()
    # a killed server drops the connection: read fails instead of hanging
    deadline = time.monotonic() + 10
    while cap.read()[0]:
        assert time.monotonic() < deadline, "reads kept succeeding after the server died"
    cap.release()
    rtsp_server.start()
    cap = _open(rtsp_server.url("noface"))
    assert cap.read()[0]
    cap.release()


def test_benchmark_pass_through_mount_keeps_every_frame_whole(shared_media: Any, tmp_path: Any) -> None:
    # Given the benchmark's camera simulator: a clip encoded once, then passed through unchanged
    from pipeline.bench.camera_sim import RtspServer, transcode_for_passthrough
    from pipeline.detect.detector import DetectionStage
    from pipeline.settings import DetectSettings
    from tests.support.net import free_port

    clip = transcode_for_passthrough(shared_media / "video" / "cremad" / "1001_DFA_HAP_XX.mp4", tmp_path)
    server = RtspServer(free_port(), {"hap": clip}, tmp_path / "rtsp.log", passthrough=True)
    server.start()
    try:
        # When it is read for longer than the clip (so it loops twice)
        cap = _open(server.url("hap"))
        frames, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 4.5:
            ok, frame = cap.read()
            assert ok, f"stream ended after {len(frames)} frames"
            frames.append(frame)
        cap.release()
    finally:
        server.stop()
    # Then frames keep coming and every sampled frame still shows the face (no lost slices)
    assert len(frames) >= 90
    detector = DetectionStage(DetectSettings())
    sampled = frames[::5]
    with_face = sum(1 for f in sampled if detector.detect_frame(f))
    assert with_face >= 0.95 * len(sampled), f"{with_face}/{len(sampled)} sampled frames show the face"
