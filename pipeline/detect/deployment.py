"""Ray Serve deployment ``FaceDetector``: a thin wrapper around the plain class.

Replica options (``num_cpus``, replica counts, ``max_ongoing_requests``) are
set by the app builder from ``settings.detect`` via ``.options(...)``; the
decorator stays bare so this module imposes no policy.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from pipeline.detect.detector import FaceDetector as FaceDetectorLogic
from pipeline.detect.tracker import TrackState
from pipeline.detect.types import DetectResult, FrameMeta
from pipeline.exceptions import ConfigError
from pipeline.settings import Settings

__all__ = ["FaceDetector"]


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
        self._logic = FaceDetectorLogic(settings.detect)
        # from_settings carries the stream bound (classify.stream_maxlen) the
        # store enforces when it refuses crops.
        self._store = RedisStore.from_settings(settings)

    def detect(self, frame: np.ndarray, meta: FrameMeta, tracks: TrackState | None) -> DetectResult:
        """Process one frame of one camera; see :meth:`FaceDetectorLogic.process`."""
        return self._logic.process(frame, meta, tracks, self._store)
