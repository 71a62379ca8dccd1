"""Camera credentials never reach logs or health: the real reader (OpenCV + FFmpeg) in a subprocess.

The subprocess runs with every log switched to its most verbose level (Python DEBUG, OpenCV
DEBUG, FFmpeg debug through ``OPENCV_FFMPEG_DEBUG``) and reads cameras that fail in different
ways: connection refused, an RTSP server answering ``401 Unauthorized`` (it does see the
credentials: FFmpeg retries with Basic auth), and a name that does not resolve. Everything it
prints, on stdout and stderr at the file-descriptor level, and every health hash it writes to
Redis is searched for the password, the query token and their Basic-auth encoding.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.store.redis_store import RedisStore
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Zx9-s3cr3t-pw"
TOKEN = "Tk-9f8e7d-query"

_READER = textwrap.dedent(
    """
    import asyncio, logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    from pipeline.ingest.reader import FrameGrabber
    from pipeline.ingest.sources import validate_source
    from pipeline.ingest.stream import CameraStream
    from pipeline.settings import IngestSettings
    from pipeline.store.redis_store import RedisStore

    redis_url, urls = sys.argv[1], sys.argv[2:]
    settings = IngestSettings(allow_loopback=True, open_timeout_ms=1500, read_timeout_ms=1500,
                              backoff_initial_s=0.1, backoff_max_s=0.3)
    store = RedisStore.from_url(redis_url, "seclog:")

    async def detect(frame, meta, tracks):
        raise RuntimeError("never reached")

    async def main():
        streams = [
            CameraStream(f"cam{i}", FrameGrabber(validate_source(url, settings), settings), detect, fps=5,
                         settings=settings, health_sink=store.set_health, tracks=object(),
                         meta_factory=lambda c, f, t: None)
            for i, url in enumerate(urls)
        ]
        tasks = [asyncio.create_task(s.run()) for s in streams]
        await asyncio.sleep(4.0)
        for s in streams:
            s.stop()
        await asyncio.gather(*tasks)
        for s in streams:
            print("HEALTH", s.camera_id, s.health(), flush=True)

    asyncio.run(main())
    """
)


@pytest.fixture()
def rtsp_401() -> Iterator[int]:
    """A minimal RTSP endpoint that answers every request with 401 and a Basic challenge."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.settimeout(5)
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    request, buf = buf.split(b"\r\n\r\n", 1)
                    cseq = next((ln.split(b":", 1)[1].strip() for ln in request.split(b"\r\n")
                                 if ln.lower().startswith(b"cseq:")), b"1")
                    conn.sendall(b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq
                                 + b'\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n')

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(srv.getsockname()[1])
    stop.set()
    thread.join(2)
    srv.close()


def test_failing_cameras_never_log_or_report_credentials(redis_url: str, rtsp_401: int) -> None:
    userinfo = f"admin:{PASSWORD}"
    urls = [
        f"rtsp://{userinfo}@127.0.0.1:{free_port()}/live?token={TOKEN}",  # connection refused
        f"rtsp://{userinfo}@127.0.0.1:{rtsp_401}/live?token={TOKEN}",  # 401 Unauthorized
        f"rtsp://{userinfo}@camera.invalid:554/live?token={TOKEN}",  # does not resolve
        f"http://{userinfo}@127.0.0.1:{free_port()}/mjpeg?api_key={TOKEN}",  # HTTP, refused
    ]
    env = dict(os.environ, OPENCV_FFMPEG_DEBUG="1", OPENCV_LOG_LEVEL="DEBUG", PYTHONUNBUFFERED="1")
    # When the real reader tries them for a few seconds with every log at its most verbose
    proc = subprocess.run(
        [sys.executable, "-c", _READER, redis_url, *urls],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    # Then the failures were logged (so the test saw real log lines) ...
    assert "could not open rtsp://admin:***@127.0.0.1:" in output
    assert output.count("HEALTH") == len(urls)
    # ... and neither the logs nor the health in Redis hold a secret, in clear or as Basic auth
    basic = base64.b64encode(userinfo.encode()).decode()
    store = RedisStore.from_url(redis_url, "seclog:")
    try:
        health = [str(store.get_health(f"cam{i}")) for i in range(len(urls))]
    finally:
        store.close()
    assert all("last_error" in h and "state" in h for h in health)
    for secret in (PASSWORD, TOKEN, basic):
        assert secret not in output, f"{secret!r} leaked into the logs"
        assert not any(secret in h for h in health), f"{secret!r} leaked into health"
