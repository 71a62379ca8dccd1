"""Continuous frame grabbing with latest-frame semantics, stall detection and reconnects.

OpenCV's FFmpeg backend buffers decoded frames: a consumer that reads only when it
wants a frame gets old frames, and latency drifts. :class:`FrameGrabber` reads in a
background thread as fast as the source delivers and keeps only the newest frame.

Each connection runs in its own thread so a watchdog (the supervisor thread) can give
up on a capture stuck inside ``read()``: OpenCV cannot be interrupted, so a stalled
connection is *abandoned* — its thread releases the capture when ``read()`` finally
returns (bounded by the read timeout) and its frames are ignored — and a new
connection is opened at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common.backoff import backoff_delay
from pipeline.common.rate import sliding_rate
from pipeline.ingest.exceptions import SourceUnavailable
from pipeline.ingest.sources import Source, open_capture
from pipeline.ingest.types import Capture, CaptureFactory, Frame, GrabberStats, StreamState

if TYPE_CHECKING:
    from pipeline.settings import IngestSettings

__all__ = ["Frame", "FrameGrabber", "GrabberStats", "StreamState"]

log = logging.getLogger(__name__)

_POLL_S = 0.25  # watchdog granularity: bounds how late a stall or a stop is noticed (20 wake-ups/s per camera cost ~0.3 % of a core each)
_HEALTHY_AFTER_S = 10.0  # a connection live this long resets the backoff
_FPS_WINDOW_S = 5.0
_DEFAULT_FILE_FPS = 25.0


class _Connection:
    """One open-and-read attempt; abandoned connections are ignored, never joined."""

    def __init__(self, gen: int) -> None:
        self.gen = gen
        self.started = time.monotonic()
        self.first_frame: float | None = None
        self.last_frame: float | None = None
        self.outcome = "stopped"  # "eof" | "error" | "open_failed" | "stopped"
        self.error = ""
        self.abandoned = threading.Event()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def finish(self, outcome: str, error: str = "") -> None:
        self.outcome, self.error = outcome, error


def _valid_image(img: Any) -> bool:
    return (
        isinstance(img, np.ndarray)
        and img.dtype == np.uint8
        and img.ndim in (2, 3)
        and img.shape[0] > 0
        and img.shape[1] > 0
    )


class FrameGrabber:
    """Reads a source continuously in the background and keeps only the newest frame.

    Args:
        source: A validated source (see :func:`~pipeline.ingest.sources.validate_source`).
        settings: Ingest settings: timeouts, stall threshold, backoff bounds.
        loop_files: Reopen a file source at EOF (demo cameras) instead of stopping.
        pace_files: Deliver file frames at the file's own frame rate, like a camera,
            instead of as fast as they decode.
        capture_factory: Opens the source; replaced by fakes in tests.
        max_read_failures: Consecutive failed/corrupt reads that count as a lost stream.
        max_attempts: Consecutive failed connections before giving up (FAILED);
            ``None`` retries forever, which is what live cameras want.
        rng: Random source for backoff jitter (seeded in tests).
        sample_fps: The rate the consumer samples at; live frames that cannot be
            sampled are grabbed (decoded) but not converted to BGR.
    """

    def __init__(
        self,
        source: Source,
        settings: IngestSettings,
        *,
        loop_files: bool = False,
        pace_files: bool = True,
        capture_factory: CaptureFactory = open_capture,
        max_read_failures: int = 3,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        sample_fps: float | None = None,
    ) -> None:
        self.source = source
        # Live streams are decoded at their native rate (often 25-30 fps) but sampled at the
        # camera's fps: converting only every frame that can still be sampled (twice the
        # sampling rate keeps the newest frame at most half a sample period old) saves the
        # colour conversion of most frames. Files are paced, not skipped.
        self._retrieve_every = 0.5 / sample_fps if sample_fps and source.is_live else 0.0
        self._settings = settings
        self._loop_files = loop_files
        self._pace_files = pace_files
        self._factory = capture_factory
        self._max_read_failures = max(1, max_read_failures)
        self._max_attempts = max_attempts
        self._rng = rng or random.Random()

        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._conn: _Connection | None = None
        self._gen = 0

        self._state = StreamState.STOPPED
        self._latest: Frame | None = None
        self._next_id = 0
        self._skipped = 0
        self._times: deque[float] = deque(maxlen=256)
        self._corrupt = 0
        self._read_failures = 0
        self._reconnects = 0
        self._stalls = 0
        self._resolution_changes = 0
        self._loops = 0
        self._shape: tuple[int, ...] | None = None
        self._last_error = ""
        self._last_error_ts = 0.0

    # -- public API ------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        """Current :class:`StreamState`."""
        with self._cond:
            return self._state

    @property
    def last_error(self) -> str:
        """The most recent error, redacted; empty if none happened."""
        with self._cond:
            return self._last_error

    def start(self) -> None:
        """Start the background threads. Idempotent while running."""
        with self._cond:
            if self._supervisor is not None and self._supervisor.is_alive():
                return
            self._stop.clear()
            self._state = StreamState.CONNECTING
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"grabber:{self.source.redacted[:40]}", daemon=True
        )
        self._supervisor.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop reading and release the capture.

        Args:
            timeout: Seconds to wait for the threads.

        Returns:
            True if every thread ended in time. A connection stuck inside OpenCV's
            ``read()`` ends on its own once the read timeout expires (daemon thread).
        """
        self._stop.set()
        self._abandon_current()
        deadline = time.monotonic() + timeout
        ok = True
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(max(0.0, deadline - time.monotonic()))
            ok = not self._supervisor.is_alive()
        # Read the connection only now: the supervisor may have opened one while stopping.
        self._abandon_current()
        with self._cond:
            conn = self._conn
        if conn is not None and conn.thread is not None and conn.thread is not threading.current_thread():
            conn.thread.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not conn.thread.is_alive()
        with self._cond:
            if self._state is not StreamState.FAILED:
                self._state = StreamState.STOPPED
        return ok

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one. Never blocks."""
        with self._cond:
            return self._latest

    def wait_frame(self, after_id: int = -1, timeout: float = 1.0) -> Frame | None:
        """Block until a frame newer than ``after_id`` exists, at most ``timeout`` seconds.

        Returns:
            The newest frame if it is newer than ``after_id``, else None.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.frame_id <= after_id:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(remaining)
            return self._latest

    def wait_state(self, *states: StreamState, timeout: float = 5.0) -> bool:
        """Block until the state is one of ``states`` (tests, start-up checks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._state not in states:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _POLL_S))
            return True

    def fps_in(self) -> float:
        """Frames per second received over the last few seconds."""
        with self._cond:
            return self._fps_locked(time.monotonic())

    def stats(self) -> GrabberStats:
        """A consistent snapshot of the counters."""
        now = time.monotonic()
        with self._cond:
            shape = self._shape or (0, 0)
            latest = self._latest
            return GrabberStats(
                state=self._state,
                frames_in=self._next_id + self._skipped,
                fps_in=round(self._fps_locked(now), 2),
                corrupt=self._corrupt,
                read_failures=self._read_failures,
                reconnects=self._reconnects,
                stalls=self._stalls,
                resolution_changes=self._resolution_changes,
                loops=self._loops,
                width=int(shape[1]),
                height=int(shape[0]),
                last_frame_ts=latest.ts if latest else 0.0,
                last_error=self._last_error,
                last_error_ts=self._last_error_ts,
            )

    # -- internals --------------------------------------------------------------------

    def _abandon_current(self) -> None:
        with self._cond:
            conn = self._conn
            self._cond.notify_all()
        if conn is not None:
            conn.abandoned.set()

    def _fps_locked(self, now: float) -> float:
        return sliding_rate(self._times, now, _FPS_WINDOW_S)

    def _set_state(self, state: StreamState) -> None:
        with self._cond:
            if self._state is not state:
                log.info("%s: %s -> %s", self.source.redacted, self._state.value, state.value)
                self._state = state
                self._cond.notify_all()

    def _record_error(self, error: str) -> None:
        if error:
            with self._cond:
                self._last_error, self._last_error_ts = error, time.time()
            log.warning("%s", error)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads reconnects of many cameras behind one failed server
        # instead of synchronising them.
        s = self._settings
        return backoff_delay(attempt, s.backoff_initial_s, s.backoff_max_s, self._rng)

    def _supervise(self) -> None:
        attempt = 0
        final = StreamState.STOPPED
        while not self._stop.is_set():
            conn = self._start_connection()
            outcome = self._watch(conn)
            if outcome == "stopped" or self._stop.is_set():
                break
            live_for = conn.last_frame - conn.first_frame if conn.first_frame and conn.last_frame else 0.0
            if outcome == "eof" and conn.first_frame is not None:
                if not self._loop_files:
                    log.info("%s: end of file", self.source.redacted)
                    break
                with self._cond:
                    self._loops += 1
                attempt = 0
                continue
            if outcome == "eof":
                self._record_error(f"{self.source.redacted}: ended before the first frame")
            if not self.source.is_live and outcome == "open_failed":
                final = StreamState.FAILED
                break
            if live_for >= _HEALTHY_AFTER_S:
                attempt = 0
            attempt += 1
            if self._max_attempts is not None and attempt >= self._max_attempts:
                self._record_error(f"{self.source.redacted}: giving up after {attempt} failed attempts")
                final = StreamState.FAILED
                break
            self._set_state(StreamState.RECONNECTING)
            delay = self._backoff(attempt - 1)
            log.info("%s: reconnecting in %.2fs (attempt %d)", self.source.redacted, delay, attempt)
            if self._stop.wait(delay):
                break
            with self._cond:
                self._reconnects += 1
        self._abandon_current()
        with self._cond:
            self._state = final
            self._cond.notify_all()

    def _start_connection(self) -> _Connection:
        with self._cond:
            self._gen += 1
            conn = _Connection(self._gen)
            self._conn = conn
        conn.thread = threading.Thread(
            target=self._connection_main, args=(conn,), name=f"capture-{conn.gen}", daemon=True
        )
        conn.thread.start()
        return conn

    def _watch(self, conn: _Connection) -> str:
        s = self._settings
        first_frame_budget = s.open_timeout_ms / 1000.0 + s.stall_after_s
        while True:
            if conn.done.wait(_POLL_S):
                if conn.error:
                    self._record_error(conn.error)
                return conn.outcome
            if self._stop.is_set():
                return "stopped"
            now = time.monotonic()
            if conn.last_frame is None:
                stalled = now - conn.started > first_frame_budget
                why = f"no frame within {first_frame_budget:.1f}s of connecting"
            else:
                stalled = now - conn.last_frame > s.stall_after_s
                why = f"stalled: no frame for {now - conn.last_frame:.1f}s"
            if stalled:
                conn.abandoned.set()
                with self._cond:
                    self._stalls += 1
                self._record_error(f"{self.source.redacted}: {why}")
                return "error"

    def _connection_main(self, conn: _Connection) -> None:
        try:
            cap = self._factory(self.source, self._settings)
        except SourceUnavailable as exc:
            conn.finish("open_failed", str(exc))
            conn.done.set()
            return
        except Exception as exc:  # any backend failure must not kill the supervisor
            # str(exc) of a backend error may quote the URL; log the type only.
            conn.finish("open_failed", f"{type(exc).__name__} while opening {self.source.redacted}")
            conn.done.set()
            return
        try:
            if self._stop.is_set():
                return
            self._read_loop(conn, cap)
        except Exception as exc:  # same: a crashing read is a lost connection
            conn.finish("error", f"{type(exc).__name__} while reading {self.source.redacted}")
        finally:
            try:
                cap.release()
            finally:
                conn.done.set()

    def _read_loop(self, conn: _Connection, cap: Capture) -> None:
        import cv2

        period = 0.0
        if not self.source.is_live and self._pace_files:
            native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            period = 1.0 / (native if 1.0 <= native <= 240.0 else _DEFAULT_FILE_FPS)
        next_due = time.monotonic()
        failures = 0
        skip_until = 0.0
        # cv2.VideoCapture has grab/retrieve; minimal captures (test fakes) only read().
        grab, retrieve = getattr(cap, "grab", None), getattr(cap, "retrieve", None)
        can_skip = self._retrieve_every > 0
        # A read that blocked until FFmpeg's read timeout and still "succeeded" returned a frame
        # drained from the decoder's queue (frame threading delays output by a few frames), not
        # new data: it must not count as life, or a silent stream looks live for another read
        # timeout per queued frame and the stall watchdog fires several times later than set.
        blocked_s = 0.9 * self._settings.read_timeout_ms / 1000.0 if self.source.is_live else float("inf")
        img: Any
        while not conn.abandoned.is_set():
            read_started = time.monotonic()
            if can_skip and grab is not None and retrieve is not None:
                ok, img = grab(), None
                if ok and time.monotonic() - read_started >= blocked_s:
                    ok = False  # a stale frame after a read timeout: a failed read, not a live frame
                elif ok and time.monotonic() < skip_until:
                    self._count_skipped(conn)
                    continue
                if ok:
                    ok, img = retrieve()
                    skip_until = time.monotonic() + self._retrieve_every
            else:
                ok, img = cap.read()
            if conn.abandoned.is_set():
                return
            if ok and time.monotonic() - read_started >= blocked_s:
                ok = False
            if not ok:
                if not self.source.is_live:
                    conn.finish("eof")
                    return
                failures += 1
                with self._cond:
                    self._read_failures += 1
                if failures >= self._max_read_failures:
                    conn.finish("error", f"{self.source.redacted}: read failed {failures} times in a row")
                    return
                conn.abandoned.wait(0.01)  # a dead capture fails instantly; don't spin
                continue
            if not _valid_image(img):
                with self._cond:
                    self._corrupt += 1
                failures += 1
                if self.source.is_live and failures >= self._max_read_failures:
                    conn.finish("error", f"{self.source.redacted}: {failures} corrupt frames in a row")
                    return
                continue
            failures = 0
            self._publish(conn, img)
            if period:
                next_due += period
                delay = next_due - time.monotonic()
                if delay < -period:  # fell behind (slow consumer box); don't burst
                    next_due = time.monotonic()
                elif delay > 0 and conn.abandoned.wait(delay):
                    return

    def _count_skipped(self, conn: _Connection) -> None:
        """A frame arrived (fps, stall watch) but nobody can sample it before the next one."""
        mono = time.monotonic()
        with self._cond:
            if conn.gen == self._gen and not conn.abandoned.is_set():
                self._times.append(mono)
                self._skipped += 1
                conn.last_frame = mono

    def _publish(self, conn: _Connection, img: np.ndarray) -> None:
        img.flags.writeable = False
        mono = time.monotonic()
        with self._cond:
            if conn.gen != self._gen or conn.abandoned.is_set():
                return
            if self._shape is not None and img.shape != self._shape:
                self._resolution_changes += 1
                log.info("%s: resolution %s -> %s", self.source.redacted, self._shape, img.shape)
            self._shape = img.shape
            self._latest = Frame(image=img, frame_id=self._next_id, ts=time.time(), mono=mono)
            self._next_id += 1
            self._times.append(mono)
            if conn.first_frame is None:
                conn.first_frame = mono
            conn.last_frame = mono
            if self._state is not StreamState.LIVE:
                log.info("%s: %s -> live", self.source.redacted, self._state.value)
                self._state = StreamState.LIVE
            self._cond.notify_all()
