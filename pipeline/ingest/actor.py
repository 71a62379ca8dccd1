"""Ray actor wrapper around :class:`~pipeline.ingest.stream.CameraStream`: one process, several cameras.

All logic lives in :mod:`pipeline.ingest.stream` and :mod:`pipeline.ingest.reader`;
this module only wires grabbers, the FaceDetector handle and the Redis health sink.

A reader hosts up to ``ingest.cameras_per_reader`` cameras, and the frames its cameras sample
together go to the detector as one request (:mod:`pipeline.ingest.batcher`). A Ray worker process costs
~2 % of a core on its own (its core-worker threads, event loop, Serve router) and ~100 MB:
paid once per camera, that was a third of a camera's whole cost on 2 cores. Each camera still
has its own grabber threads and sampling loop, so a camera that fails, stalls or stops leaves
its neighbours alone; a reader process that dies takes its cameras with it, and the camera
manager respawns each of them (into another reader) like any dead camera.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import ray

from pipeline.contracts import APP_NAME
from pipeline.ingest.batcher import DetectBatcher
from pipeline.ingest.reader import FrameGrabber
from pipeline.ingest.sources import validate_source
from pipeline.ingest.stream import CameraStream, HealthValue

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store.models import CameraConfig

log = logging.getLogger(__name__)

DETECTOR_DEPLOYMENT = "FaceDetector"
# A reader mostly waits on sockets and the detector; many cameras must fit on 2 cores.
READER_NUM_CPUS = 0.05
_STOP_TIMEOUT_S = 8.0


class StreamReader:
    """Reads several cameras and feeds their frames to the ``FaceDetector`` deployment.

    An async actor: :meth:`read` is called once per camera and returns only when that
    camera's stream stops, so its ObjectRef doubles as the camera's liveness signal for the
    camera manager; :meth:`stop`, :meth:`health` and the other cameras' :meth:`read` run
    concurrently on the same event loop.

    Args:
        settings: The settings tree (ingest and detect sections, Redis URL and prefix).
        loop_files: Loop file sources (demo cameras) instead of ending at EOF.
        app_name: Serve application holding the detector.
        detector: Name of the detector deployment.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        loop_files: bool = False,
        app_name: str = APP_NAME,
        detector: str = DETECTOR_DEPLOYMENT,
    ) -> None:
        from ray import serve

        from pipeline.detect.types import DetectFailure
        from pipeline.store.redis_store import RedisStore

        self._settings = settings
        self._loop_files = loop_files
        self._store = RedisStore.from_settings(settings)
        handle = serve.get_deployment_handle(detector, app_name=app_name)

        async def send(frames: list[Any], metas: list[Any], tracks: list[Any]) -> list[Any]:
            results = await handle.detect_batch.remote(frames, metas, tracks)
            return [RuntimeError(r.message) if isinstance(r, DetectFailure) else r for r in results]

        self._batcher = DetectBatcher(send, max_batch=settings.ingest.cameras_per_reader)
        self._streams: dict[str, CameraStream] = {}
        self._done: dict[str, asyncio.Event] = {}

    async def read(self, camera: CameraConfig) -> None:
        """Stream ``camera`` until :meth:`stop` is called for it.

        Raises:
            InvalidSource: The camera URL is not acceptable (message redacted).
            RuntimeError: The camera is already read here.
        """
        from pipeline.detect.schedule import CameraSchedule

        if camera.id in self._streams:
            raise RuntimeError(f"camera {camera.id} is already read by this reader")
        source = validate_source(camera.url, self._settings.ingest)
        grabber = FrameGrabber(source, self._settings.ingest, loop_files=self._loop_files, sample_fps=camera.fps)
        stream = CameraStream(
            camera.id,
            grabber,
            self._batcher.detect,
            fps=camera.fps,
            settings=self._settings.ingest,
            health_sink=self._store.set_health,
            prepare=CameraSchedule(self._settings.detect, camera.fps).prepare,
        )
        self._streams[camera.id] = stream
        done = self._done[camera.id] = asyncio.Event()
        log.info("camera %s: reading %s", camera.id, source.redacted)
        try:
            await stream.run()
        finally:
            done.set()
            self._streams.pop(camera.id, None)
            self._done.pop(camera.id, None)

    async def stop(self, camera_id: str, timeout: float = _STOP_TIMEOUT_S) -> bool:
        """Stop reading one camera and release its capture.

        Returns:
            True if the camera's stream finished within ``timeout`` seconds (or was not read here).
        """
        stream, done = self._streams.get(camera_id), self._done.get(camera_id)
        if stream is None or done is None:
            return True
        stream.stop()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def cameras(self) -> list[str]:
        """Ids of the cameras read here."""
        return sorted(self._streams)

    async def health(self, camera_id: str) -> dict[str, HealthValue]:
        """One camera's health dict (same fields as written to Redis); empty if not read here."""
        stream = self._streams.get(camera_id)
        return stream.health() if stream is not None else {}


def reader_actor_class(num_cpus: float = READER_NUM_CPUS) -> Any:
    """``StreamReader`` as a Ray actor class with a fractional CPU reservation.

    No restarts: a dead reader is noticed and its cameras respawned by the camera manager,
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
