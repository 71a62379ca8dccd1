"""Bad media through the real reader (FFmpeg via OpenCV) and the real sampling loop, no Ray.

Truncated files, garbage bytes, a bit-rotted transport stream and a resolution change are
generated from the shared clips with ffmpeg; the reader must count, skip or reconnect, never
crash, and frames must keep reaching the detector callback.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.ingest.reader import FrameGrabber, StreamState
from pipeline.ingest.sources import validate_source
from pipeline.ingest.stream import CameraStream
from pipeline.settings import IngestSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = IngestSettings(allow_files=True, stall_after_s=2.0, backoff_initial_s=0.1, backoff_max_s=0.3, max_width=960)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed")
    out = tmp_path_factory.mktemp("bad-media")
    src = str(shared_media / "video" / "single_face.mp4")  # 640x360, 2.4 s
    enc = ["-an", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-bf", "0"]
    _ffmpeg("-i", src, *enc, "-movflags", "+faststart", str(out / "whole.mp4"))
    _ffmpeg("-i", src, *enc, "-f", "mpegts", str(out / "a.ts"))
    _ffmpeg("-i", src, "-vf", "scale=320:180", *enc, "-f", "mpegts", str(out / "small.ts"))
    rng = random.Random(6)
    whole = (out / "whole.mp4").read_bytes()
    (out / "truncated.mp4").write_bytes(whole[: int(len(whole) * 0.6)])
    (out / "garbage.mp4").write_bytes(rng.randbytes(200_000))
    ts = bytearray((out / "a.ts").read_bytes())
    for frac in (0.3, 0.5, 0.7):  # bit rot: three 3 KB holes of random bytes
        i = int(len(ts) * frac)
        ts[i : i + 3000] = rng.randbytes(3000)
    (out / "corrupt.ts").write_bytes(bytes(ts))
    (out / "resize.ts").write_bytes((out / "a.ts").read_bytes() + (out / "small.ts").read_bytes())
    return {p.stem: p for p in out.iterdir()}


def _run_stream(grabber: FrameGrabber, seconds: float, fps: float = 10.0) -> tuple[CameraStream, list[tuple[int, ...]]]:
    """Run the real sampling loop for a while; return it and the frame shapes the detector got."""
    shapes: list[tuple[int, ...]] = []

    class Result:
        n_faces = 0
        tracks = None

    async def detect(frame: np.ndarray, meta: object, tracks: object) -> Result:
        shapes.append(frame.shape)
        return Result()

    stream = CameraStream("cam", grabber, detect, fps=fps, settings=SETTINGS, tracks=object(),
                          meta_factory=lambda c, f, t: type("M", (), {"frame_id": f})())

    async def main() -> None:
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(seconds)
        stream.stop()
        await task

    asyncio.run(main())
    return stream, shapes


@pytest.mark.parametrize("name", ["truncated", "corrupt"])
def test_truncated_and_corrupt_files_keep_streaming(media: dict[str, Path], name: str) -> None:
    # Given a looping file camera whose file is cut short / has holes of random bytes
    grabber = FrameGrabber(validate_source(str(media[name]), SETTINGS), SETTINGS, loop_files=True)
    # When it is read for a few seconds (longer than the readable part)
    stream, shapes = _run_stream(grabber, 5.0)
    # Then decoding errors end the readable part like an EOF (the file loops), nothing crashes,
    # and frames keep reaching detection at the sampling rate
    health = stream.health()
    print(f"\nFAULT media-{name} frames_in={health['frames_in']} sent={health['frames_sent']} "
          f"corrupt={health['corrupt']} loops={grabber.stats().loops} state={health['state']}")
    assert grabber.stats().loops >= 1
    assert len(shapes) >= 0.6 * 10 * 4
    assert health["state"] == "stopped"  # stopped by us, not failed


def test_garbage_file_fails_cleanly(media: dict[str, Path]) -> None:
    grabber = FrameGrabber(validate_source(str(media["garbage"]), SETTINGS), SETTINGS, loop_files=True)
    try:
        grabber.start()
        # A file that cannot be opened will not get better: FAILED, with the reason
        assert grabber.wait_state(StreamState.FAILED, timeout=10)
        assert "could not open" in grabber.last_error
        assert grabber.stats().frames_in == 0
    finally:
        grabber.stop()


def test_resolution_change_mid_stream(media: dict[str, Path]) -> None:
    # Given a stream that switches from 640x360 to 320x180 half-way (two H.264 sequences in one TS)
    grabber = FrameGrabber(validate_source(str(media["resize"]), SETTINGS), SETTINGS, loop_files=True)
    # When it is read past the switch
    _, shapes = _run_stream(grabber, 6.0)
    # Then reading goes on through the switch and loops: OpenCV's FFmpeg backend scales the new
    # sequence to the size it opened with, so the detector sees one size and nothing breaks
    stats = grabber.stats()
    print(f"\nFAULT media-resolution-change frames_in={stats.frames_in} loops={stats.loops} "
          f"shapes={sorted(set(shapes))} changes={stats.resolution_changes}")
    assert stats.loops >= 1 and stats.frames_in >= 144
    assert len(shapes) >= 0.6 * 10 * 5


def test_resolution_change_between_connections(media: dict[str, Path], tmp_path: Path) -> None:
    # Given a camera whose next connection delivers another size (a camera reconfigured:
    # here the looping file is replaced between loops)
    target = tmp_path / "cam.mp4"
    shutil.copy(media["whole"], target)
    grabber = FrameGrabber(validate_source(str(target), SETTINGS), SETTINGS, loop_files=True)
    shapes: list[tuple[int, ...]] = []

    class Result:
        n_faces = 0
        tracks = None

    async def detect(frame: np.ndarray, meta: object, tracks: object) -> Result:
        shapes.append(frame.shape)
        return Result()

    stream = CameraStream("cam", grabber, detect, fps=10, settings=SETTINGS, tracks=object(),
                          meta_factory=lambda c, f, t: type("M", (), {"frame_id": f})())

    async def main() -> None:
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(1.0)
        small = tmp_path / "small.mp4"
        _ffmpeg("-i", str(media["whole"]), "-vf", "scale=320:180", "-an", "-c:v", "libx264", "-preset",
                "ultrafast", str(small))
        small.replace(target)  # atomic: the next loop opens the new file
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8 and (320 not in {s[1] for s in shapes}):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        stream.stop()
        await task

    asyncio.run(main())
    # Then the change is counted and frames of the new size flow on
    stats = grabber.stats()
    print(f"\nFAULT media-resolution-reconnect changes={stats.resolution_changes} shapes={sorted(set(shapes))}")
    assert stats.resolution_changes >= 1
    assert {s[:2] for s in shapes} >= {(360, 640), (180, 320)}
    assert shapes[-1][:2] == (180, 320)
