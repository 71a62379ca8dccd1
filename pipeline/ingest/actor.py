"""Ray actor wrapper around :class:`~pipeline.ingest.stream.CameraStream`: one per camera.

All logic lives in :mod:`pipeline.ingest.stream` and :mod:`pipeline.ingest.reader`;
this module only wires a grabber, the FaceDetector handle and the Redis health sink.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import ray

from pipeline.contracts import APP_NAME
from pipeline.ingest.reader import FrameGrabber
from pipeline.ingest.sources import validate_source
from pipeline.ingest.stream import CameraStream, HealthValue

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store.models import CameraConfig

log = logging.getLogger(__name__)

DETECTOR_DEPLOYMENT = "FaceDetector"
# One reader mostly waits on sockets and the detector; many cameras must fit on 2 cores.
READER_NUM_CPUS = 0.05
_STOP_TIMEOUT_S = 8.0


class StreamReader:
    """Reads one camera and feeds its frames to the ``FaceDetector`` deployment.

    An async actor: :meth:`run` is called once and returns only when the stream stops,
    so its ObjectRef doubles as a liveness signal for the camera manager;
    :meth:`health` and :meth:`stop` run concurrently on the same event loop.

    Args:
        camera: The camera's registry entry.
        settings: The settings tree (ingest section, Redis URL and prefix).
        loop_files: Loop file sources (demo cameras) instead of ending at EOF.
        app_name: Serve application holding the detector.
        detector: Name of the detector deployment.

    Raises:
        InvalidSource: The camera URL is not acceptable (message redacted); the actor
            then fails to start.
    """

    def __init__(
        self,
        camera: CameraConfig,
        settings: Settings,
        *,
        loop_files: bool = False,
        app_name: str = APP_NAME,
        detector: str = DETECTOR_DEPLOYMENT,
    ) -> None:
        from ray import serve

        from pipeline.store.redis_store import RedisStore

        source = validate_source(camera.url, settings.ingest)
        self._store = RedisStore.from_settings(settings)
        handle = serve.get_deployment_handle(detector, app_name=app_name)

        def detect(frame: Any, meta: Any, tracks: Any) -> Any:
            return handle.detect.remote(frame, meta, tracks)

        grabber = FrameGrabber(source, settings.ingest, loop_files=loop_files, sample_fps=camera.fps)
        self._stream = CameraStream(
            camera.id,
            grabber,
            detect,
            fps=camera.fps,
            settings=settings.ingest,
            health_sink=self._store.set_health,
        )
        self._done = asyncio.Event()
        self._started = False
        log.info("camera %s: reader for %s", camera.id, source.redacted)

    async def run(self) -> None:
        """Stream until :meth:`stop`. Call once; a second call returns immediately."""
        if self._started:
            return
        self._started = True
        try:
            await self._stream.run()
        finally:
            self._done.set()

    async def stop(self, timeout: float = _STOP_TIMEOUT_S) -> bool:
        """Stop streaming and release the capture.

        Returns:
            True if the stream finished within ``timeout`` seconds.
        """
        self._stream.stop()
        if not self._started:
            return True
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._store.close()
        return True

    async def health(self) -> dict[str, HealthValue]:
        """The stream's health dict (same fields as written to Redis)."""
        return self._stream.health()


def reader_actor_class(num_cpus: float = READER_NUM_CPUS) -> Any:
    """``StreamReader`` as a Ray actor class with a fractional CPU reservation.

    No restarts: a dead reader is noticed and respawned by the camera manager,
    which also owns the backoff between respawns. ``SPREAD``: on a cluster, readers go to
    different nodes rather than packing onto the manager's (Ray's default for small actors), so
    losing a node stops only its share of the cameras until they are respawned elsewhere; on one
    node it changes nothing. ``MALLOC_ARENA_MAX=2``: FFmpeg's decoder
    threads otherwise get a glibc arena each, and a reader's private memory crept up under
    overload (16 cameras, 200 s: +75 MB and still rising without it, +29 MB then flat with it).
    """
    return ray.remote(
        num_cpus=num_cpus, max_restarts=0, scheduling_strategy="SPREAD",
        runtime_env={"env_vars": {"MALLOC_ARENA_MAX": "2"}},
    )(StreamReader)
