"""Session fixtures on real services: redis-server, a GStreamer RTSP server and a local Ray.

Nothing here fakes a service: the fixtures start the real programs on free loopback ports
(Redis never on 6379, which a local Ray head's GCS takes) and stop them at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bench.camera_sim import SYSTEM_PYTHON, RtspServer
from tests.support.net import free_port

# Set before anything imports ray: local clusters otherwise enable token auth and usage stats.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo fresh with shared/ beside it; the same relative path works on a laptop.
SHARED_MEDIA = Path(os.environ.get("EP_SHARED_MEDIA", REPO.parent / "shared" / "media"))

# Mount name -> file under SHARED_MEDIA. Shared media encode only while a client watches.
RTSP_MOUNTS: dict[str, str] = {
    "hap": "video/cremad/1001_DFA_HAP_XX.mp4",
    "ang": "video/cremad/1001_DFA_ANG_XX.mp4",
    "dis": "video/cremad/1001_DFA_DIS_XX.mp4",
    "fea": "video/cremad/1001_DFA_FEA_XX.mp4",
    "neu": "video/cremad/1001_DFA_NEU_XX.mp4",
    "sad": "video/cremad/1001_DFA_SAD_XX.mp4",
    "single": "video/single_face.mp4",
    "noface": "video/no_face.mp4",
    "face_noface": "video/face_noface.mov",
    "noface_face": "video/noface_face.mov",
    "wolf": "video/WolfgangLanger_Pexels.mp4",
    "crowd": "video/crowd.mp4",
}


@pytest.fixture()
def unused_port() -> int:
    """A free loopback TCP port (nothing listens there: good for 'server is down' tests)."""
    return free_port()


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The shared test media folder; tests needing it are skipped when it is absent."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"shared media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


# --------------------------------------------------------------------------- Redis
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real redis-server (AOF on) for the whole session; ``.kill()``/``.start()`` to test crashes."""
    from pipeline.runtime.redis_server import EmbeddedRedis

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make install does it)")
    server = EmbeddedRedis(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: object) -> Iterator[str]:
    """URL of the session's Redis, emptied (FLUSHALL) before each test."""
    import redis

    url: str = redis_server.url  # type: ignore[attr-defined]
    if not redis_server.is_running():  # type: ignore[attr-defined]
        redis_server.start()  # type: ignore[attr-defined]  # a previous test killed it
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    yield url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[object]:
    """A raw redis-py client (bytes responses) on the flushed test database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture()
def store(redis_url: str) -> Iterator[object]:
    """The project's Redis adapter on the flushed test database (default prefix)."""
    from pipeline.store.redis_store import RedisStore

    s = RedisStore.from_url(redis_url)
    yield s
    s.close()


# --------------------------------------------------------------------------- RTSP
@pytest.fixture(scope="session")
def rtsp_server(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """A real RTSP server looping the shared media, one mount per file (see RTSP_MOUNTS)."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.fail("GStreamer RTSP server for python3-gi is missing (make install installs it)")
    log = tmp_path_factory.mktemp("rtsp") / "rtsp_server.log"
    mounts = {name: shared_media / rel for name, rel in RTSP_MOUNTS.items() if (shared_media / rel).is_file()}
    server = RtspServer(free_port(), mounts, log)
    server.start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- Ray
@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A local, in-process Ray cluster (2 CPUs, no dashboard, loopback only) for the session."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            namespace="emotionpipe",
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    except Exception:  # noqa: BLE001 - Serve may never have started in this session
        pass
    ray.shutdown()


def pytest_report_header(config: pytest.Config) -> list[str]:
    found = "found" if SHARED_MEDIA.is_dir() else "MISSING"
    return [f"shared media: {SHARED_MEDIA} ({found}); python {sys.version.split()[0]}"]
