"""One camera's sampling loop: latest frame at the camera's fps, bounded detection in flight.

Backpressure policy: **drop newest-when-saturated** ("latest-frame"). At every tick the
newest grabbed frame is sent for detection unless ``max_inflight`` requests are already
outstanding, in which case it is dropped and counted. Latency therefore stays bounded
by the detection time instead of drifting behind a queue.

The class is plain asyncio and testable without Ray: ``detect_fn`` is any callable
returning an awaitable (a Serve ``DeploymentResponse`` or a Ray ``ObjectRef`` in
production, a coroutine in tests).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline.common.rate import sliding_rate
from pipeline.ingest.types import Frame, GrabberStats

if TYPE_CHECKING:
    from pipeline.settings import IngestSettings

log = logging.getLogger(__name__)

HealthValue = str | int | float
DetectFn = Callable[[np.ndarray, Any, Any], Awaitable[Any]]
HealthSink = Callable[[str, dict[str, Any]], None]  # RedisStore.set_health
MetaFactory = Callable[[str, int, float], Any]
# prepare(tracks, capture_ts, width, height): the tracker state to send with the frame, or None when
# it has nothing to look at (pipeline.detect.schedule.CameraSchedule).
PrepareFn = Callable[[Any, float, int, int], Any]

_RATE_WINDOW_S = 5.0
_DRAIN_TIMEOUT_S = 2.0
_SINK_TIMEOUT_S = 2.0


class GrabberLike(Protocol):
    """What :class:`CameraStream` needs from a :class:`~pipeline.ingest.reader.FrameGrabber`."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> bool: ...

    def latest(self) -> Frame | None: ...

    def stats(self) -> GrabberStats: ...


def _default_meta_factory() -> MetaFactory:
    from pipeline.detect.types import FrameMeta

    return FrameMeta


def _default_tracks() -> Any:
    from pipeline.detect.tracker import TrackerState

    return TrackerState()


def downsize(image: np.ndarray, max_width: int) -> np.ndarray:
    """Scale ``image`` down to ``max_width`` pixels wide (aspect kept); smaller images pass through."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    import cv2

    new_h = max(1, round(height * max_width / width))
    # INTER_AREA: the right filter for shrinking, no aliasing on small faces.
    return cv2.resize(image, (max_width, new_h), interpolation=cv2.INTER_AREA)


class CameraStream:
    """Samples one camera's newest frames and feeds them to the face detector.

    Args:
        camera_id: Registry id of the camera.
        grabber: Frame source (normally a :class:`~pipeline.ingest.reader.FrameGrabber`).
        detect_fn: ``detect_fn(frame, meta, tracks)`` returning an awaitable whose result
            has ``n_faces``, ``tracks`` and optionally ``publish_refused``.
        fps: Target sampling rate (the camera's configured fps).
        settings: Ingest settings (``max_inflight``, ``max_width``).
        health_sink: Called as ``sink(camera_id, health)`` about every
            ``health_interval_s`` (``RedisStore.set_health``); failures are logged, and
            the stream goes on.
        health_interval_s: Period of health writes.
        detect_timeout_s: A detection slower than this counts as an error and frees its slot.
        tracks: Initial tracker state; default an empty ``TrackerState``.
        meta_factory: Builds the frame metadata; default ``pipeline.detect.types.FrameMeta``.
        frame_id_base: First frame id. Default: Unix milliseconds at construction, so ids
            stay monotonic per camera across reader restarts (at < 1000 frames/s).
        prepare: The detection schedule's say on a frame: the state to send with it, or None
            for a frame with nothing to look at, counted as idle (processed, nothing to detect).
            Default: send every frame with the camera's state.
    """

    def __init__(
        self,
        camera_id: str,
        grabber: GrabberLike,
        detect_fn: DetectFn,
        *,
        fps: float,
        settings: IngestSettings,
        health_sink: HealthSink | None = None,
        health_interval_s: float = 1.0,
        detect_timeout_s: float = 10.0,
        tracks: Any = None,
        meta_factory: MetaFactory | None = None,
        frame_id_base: int | None = None,
        prepare: PrepareFn | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.camera_id = camera_id
        self._grabber = grabber
        self._detect_fn = detect_fn
        self._period = 1.0 / fps
        self._fps = fps
        self._max_inflight = settings.max_inflight
        self._max_width = settings.max_width
        self._sink = health_sink
        self._health_interval = health_interval_s
        self._detect_timeout = detect_timeout_s
        self._tracks = tracks if tracks is not None else _default_tracks()
        self._meta = meta_factory or _default_meta_factory()
        self._next_frame_id = int(time.time() * 1000) if frame_id_base is None else frame_id_base
        self._prepare = prepare

        self._last_sampled = -1
        self._newest_result_id = -1
        self._inflight: set[asyncio.Future[Any]] = set()
        self._processed_times: deque[float] = deque(maxlen=256)
        self._dropped_times: deque[float] = deque(maxlen=256)
        self._frames_sent = 0
        self._frames_idle = 0
        self._dropped = 0
        self._faces = 0
        self._faces_total = 0
        self._detect_errors = 0
        self._detect_skipped = 0
        self._publish_refused = 0
        self._latency_ms = 0.0
        self._last_error = ""
        self._last_error_ts = 0.0
        self._sink_failing = False

        self._stopping = False
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    @property
    def tracks(self) -> Any:
        """The newest tracker state returned by detection."""
        return self._tracks

    def stop(self) -> None:
        """Ask :meth:`run` to finish. Safe from any thread; returns at once."""
        self._stopping = True
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop already closed: run() has returned
                pass

    async def run(self) -> None:
        """Grab, sample and send frames until :meth:`stop`; then drain and stop the grabber."""
        if self._running:
            raise RuntimeError(f"camera {self.camera_id}: stream already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._grabber.start()
        next_tick = self._aligned(time.monotonic())
        last_health = 0.0
        try:
            while not self._stopping:
                self.tick()
                now = time.monotonic()
                if self._sink is not None and now - last_health >= self._health_interval:
                    last_health = now
                    await self._write_health()
                next_tick += self._period
                if next_tick < now - self._period:
                    next_tick = self._aligned(now)  # the loop was starved; don't burst to catch up
                delay = next_tick - time.monotonic()
                if delay > 0 and not self._stopping:
                    try:
                        await asyncio.wait_for(self._wake.wait(), delay)
                    except TimeoutError:
                        pass
        finally:
            await self._drain()
            # FrameGrabber.stop joins threads; keep the event loop free meanwhile.
            await asyncio.to_thread(self._grabber.stop, 5.0)
            if self._sink is not None:
                await self._write_health()
            self._running = False

    def _aligned(self, now: float) -> float:
        """The next multiple of the period: cameras with the same fps sample at the same instants
        (the monotonic clock is the machine's), so a reader can send their frames as one batch."""
        return math.ceil(now / self._period) * self._period

    def tick(self) -> bool:
        """Sample the newest frame once: send it, skip it as idle, drop it, or do nothing if not new.

        Returns:
            True if a frame was sent for detection.
        """
        frame = self._grabber.latest()
        if frame is None or frame.frame_id <= self._last_sampled:
            return False
        self._last_sampled = frame.frame_id
        if len(self._inflight) >= self._max_inflight:
            self._dropped += 1
            self._dropped_times.append(time.monotonic())
            return False
        image = downsize(frame.image, self._max_width)
        tracks = self._tracks
        if self._prepare is not None:
            tracks = self._prepare(self._tracks, frame.ts, image.shape[1], image.shape[0])
            if tracks is None:
                self._frames_idle += 1
                self._processed_times.append(time.monotonic())
                return False
        meta = self._meta(self.camera_id, self._next_frame_id, frame.ts)
        self._next_frame_id += 1
        try:
            awaitable = self._detect_fn(image, meta, tracks)
        except Exception as exc:  # a broken handle must not end the stream
            self._record_error(f"detect call failed: {type(exc).__name__}: {str(exc)[:200]}")
            return False
        task = asyncio.ensure_future(self._await_result(awaitable, meta, time.monotonic()))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        self._frames_sent += 1
        self._processed_times.append(time.monotonic())
        return True

    async def _await_result(self, awaitable: Awaitable[Any], meta: Any, sent: float) -> None:
        async def wait() -> Any:
            return await awaitable

        try:
            result = await asyncio.wait_for(wait(), self._detect_timeout)
        except TimeoutError:
            self._record_error(f"detect timed out after {self._detect_timeout:.1f}s")
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # detector errors are counted; the camera keeps streaming
            self._record_error(f"detect failed: {type(exc).__name__}: {str(exc)[:200]}")
            return
        latency = (time.monotonic() - sent) * 1000.0
        self._latency_ms = latency if self._latency_ms == 0 else 0.8 * self._latency_ms + 0.2 * latency
        if getattr(result, "skipped_stale", False):
            # Too old by the time a detector got to it: a drop, and its (unchanged) tracker
            # state must not replace the newer one another frame brought back.
            self._detect_skipped += 1
            self._dropped_times.append(time.monotonic())
            return
        n_faces = int(getattr(result, "n_faces", 0))
        self._faces_total += n_faces
        if getattr(result, "publish_refused", False):
            self._publish_refused += 1
        # Requests may finish out of order; only a newer frame's state may replace ours.
        if meta.frame_id > self._newest_result_id:
            self._newest_result_id = meta.frame_id
            self._faces = n_faces
            tracks = getattr(result, "tracks", None)
            if tracks is not None:
                self._tracks = tracks

    def _record_error(self, message: str) -> None:
        self._detect_errors += 1
        self._last_error, self._last_error_ts = message, time.time()
        log.warning("camera %s: %s", self.camera_id, message)

    async def _drain(self) -> None:
        if not self._inflight:
            return
        _, pending = await asyncio.wait(set(self._inflight), timeout=_DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_DRAIN_TIMEOUT_S)

    async def _write_health(self) -> None:
        assert self._sink is not None
        health = self.health()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._sink, self.camera_id, health), _SINK_TIMEOUT_S)
        except Exception as exc:  # Redis down must not stop the camera; log once per outage
            if not self._sink_failing:
                log.warning("camera %s: health write failed: %s", self.camera_id, type(exc).__name__)
            self._sink_failing = True
        else:
            self._sink_failing = False

    def health(self) -> dict[str, HealthValue]:
        """Health of this camera: all values are str/int/float (a Redis hash can hold them).

        ``faces`` is the face count of the newest detection result, ``faces_total`` the
        sum over all results. ``fps_out`` counts frames processed: sent to detection, or
        idle (``frames_idle``: nothing to look for, see ``prepare``). ``last_error`` is the newer of the grabber's and the
        detection's last errors, always redacted.
        """
        st = self._grabber.stats()
        now = time.monotonic()
        if st.last_error_ts >= self._last_error_ts:
            last_error, last_error_ts = st.last_error, st.last_error_ts
        else:
            last_error, last_error_ts = self._last_error, self._last_error_ts
        return {
            "state": st.state.value,
            "fps_target": self._fps,
            "fps_in": st.fps_in,
            "fps_out": round(sliding_rate(self._processed_times, now, _RATE_WINDOW_S), 2),
            # Dropped at the reader (detection saturated) or skipped by a detector (too old).
            "fps_dropped": round(sliding_rate(self._dropped_times, now, _RATE_WINDOW_S), 2),
            "frames_in": st.frames_in,
            "frames_sent": self._frames_sent,
            "frames_idle": self._frames_idle,
            "dropped": self._dropped,
            "inflight": len(self._inflight),
            "faces": self._faces,
            "faces_total": self._faces_total,
            "detect_errors": self._detect_errors,
            "detect_skipped": self._detect_skipped,
            "publish_refused": self._publish_refused,
            "latency_ms": round(self._latency_ms, 1),
            "corrupt": st.corrupt,
            "stalls": st.stalls,
            "reconnects": st.reconnects,
            "width": st.width,
            "height": st.height,
            "last_frame_ts": st.last_frame_ts,
            "last_error": last_error,
            "last_error_ts": last_error_ts,
            "updated_at": time.time(),
        }
