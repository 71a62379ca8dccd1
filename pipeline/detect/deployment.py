"""Ray Serve deployment ``FaceDetector``: a thin wrapper around the plain class.

Replica options (``num_cpus``, replica counts, ``max_ongoing_requests``) are
set by the app builder from ``settings.detect`` via ``.options(...)``; the
decorator stays bare so this module imposes no policy.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from ray import serve

from pipeline.detect.detector import DetectionStage
from pipeline.detect.snapshot import SnapshotWriter
from pipeline.detect.tracker import TrackerState
from pipeline.detect.types import DetectFailure, DetectResult, FrameMeta
from pipeline.exceptions import ConfigError
from pipeline.settings import Settings
from pipeline.store.exceptions import StoreError

__all__ = ["FaceDetector"]

log = logging.getLogger(__name__)


def is_stale(meta: FrameMeta, max_age_s: float, now: float) -> bool:
    """True when a frame captured at ``meta.ts`` is too old to be worth detecting (0 = never)."""
    return max_age_s > 0 and now - meta.ts > max_age_s


@serve.deployment
class FaceDetector:
    """Serve replica: detect, align, track and publish the faces of a frame.

    Args:
        settings: The full settings tree (the redis section must carry a
            resolved ``url``; the embedded server's URL is filled in by the
            runtime before the app is built).
    """

    def __init__(self, settings: Settings) -> None:
        # Imported here so the module (and its tests) import without the store.
        from pipeline.store.redis_store import RedisStore

        if not settings.redis.url:
            raise ConfigError("FaceDetector needs settings.redis.url (resolve the embedded server first)")
        self._logic = DetectionStage(settings.detect)
        self._max_age_s = settings.detect.max_frame_age_s
        # from_settings carries the stream bound (classify.stream_maxlen) the
        # store enforces when it refuses crops.
        self._store = RedisStore.from_settings(settings)
        # Dashboard snapshots, only for cameras whose keep_frames flag is on (off by default).
        self._snapshots = SnapshotWriter(self._store)

    def detect(self, frame: np.ndarray, meta: FrameMeta, tracks: TrackerState | None) -> DetectResult:
        """Process one frame of one camera; see :meth:`DetectionStage.process`.

        A frame older than ``detect.max_frame_age_s`` (live capture time) is skipped: it sat in
        the replica's queue behind a backlog, its result would be late anyway, and skipping is
        what lets the queue drain, so latency stays bounded under overload. The reader counts it.
        """
        if is_stale(meta, self._max_age_s, time.time()):
            return DetectResult(0, (), (), tracks or TrackerState(), skipped_stale=True)
        result = self._logic.process(frame, meta, tracks, self._store)
        self._offer_snapshot(frame, meta, result)
        return result

    def detect_batch(
        self, frames: list[np.ndarray], metas: list[FrameMeta], tracks: list[TrackerState | None]
    ) -> list[DetectResult | DetectFailure]:
        """Frames of several cameras in one request (a reader's cameras that were due together).

        One request and one Redis round trip for the batch instead of one per frame: Serve's
        per-request work (routing, (de)serialising, metrics) cost about as much as detecting
        a tracked face. Stale frames are skipped one by one, as in :meth:`detect`.
        """
        now = time.time()
        results: list[DetectResult | DetectFailure | None] = [
            DetectResult(0, (), (), state or TrackerState(), skipped_stale=True)
            if is_stale(meta, self._max_age_s, now) else None
            for meta, state in zip(metas, tracks, strict=True)
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        done = self._logic.process_batch([frames[i] for i in todo], [metas[i] for i in todo],
                                         [tracks[i] for i in todo], self._store)
        for i, result in zip(todo, done, strict=True):
            results[i] = result
            if isinstance(result, DetectResult):
                self._offer_snapshot(frames[i], metas[i], result)
        return [r for r in results if r is not None]

    def _offer_snapshot(self, frame: np.ndarray, meta: FrameMeta, result: DetectResult) -> None:
        try:
            self._snapshots.offer(meta.camera_id, frame, result.boxes, result.track_ids)
        except (StoreError, ValueError) as exc:
            # A snapshot is a convenience for the UI: losing one must not lose the frame's faces.
            log.warning("camera %s: snapshot not stored: %s", meta.camera_id, type(exc).__name__)
