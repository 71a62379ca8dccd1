"""Annotated snapshots for the dashboard, only for cameras that opted in (``keep_frames``).

Privacy first: frames never leave the detector unless the camera's ``keep_frames`` flag is
on (off by default). Then at most one JPEG per camera exists, overwritten at most once per
``min_interval_s`` and expiring ``ttl_s`` after the last write: a live view, never a history.
The flag is read from the registry with a short cache, so the readers need no change and a
registry edit takes effect within ``cache_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from pipeline.detect.types import BBox
from pipeline.exceptions import CameraNotFound

if TYPE_CHECKING:
    from pipeline.store.models import CameraConfig

log = logging.getLogger(__name__)

__all__ = ["SnapshotStore", "SnapshotWriter", "annotate"]

#: Snapshot lifetime in Redis; a camera that stops (or opts out) shows nothing after this.
DEFAULT_TTL_S = 30
#: Fewest seconds between two snapshots of one camera (the dashboard polls every 2.5 s).
DEFAULT_MIN_INTERVAL_S = 1.0
#: How long a camera's keep_frames flag is trusted before the registry is read again.
DEFAULT_CACHE_S = 5.0
#: Snapshots wider than this are scaled down (bytes in Redis, bandwidth to the browser).
MAX_WIDTH = 640
JPEG_QUALITY = 75

_BOX_BGR = (59, 195, 245)  # the dashboard's "happy" yellow, visible on most scenes
_TEXT_BGR = (20, 20, 20)


class SnapshotStore(Protocol):
    """The part of :class:`~pipeline.store.redis_store.RedisStore` snapshots need."""

    def get_camera(self, camera_id: str) -> CameraConfig: ...

    def set_snapshot(self, camera_id: str, jpeg: bytes, ttl_s: int) -> None: ...

    def track_dominants(self, camera_id: str, track_ids: Sequence[int]) -> dict[int, str]: ...


def annotate(
    frame_bgr: np.ndarray,
    boxes: Sequence[BBox],
    labels: Sequence[str | None],
    max_width: int = MAX_WIDTH,
    quality: int = JPEG_QUALITY,
) -> bytes:
    """JPEG of ``frame_bgr`` with a box per face and its label where known.

    Args:
        frame_bgr: The frame (BGR or gray uint8); not modified.
        boxes: ``(x, y, w, h)`` face boxes in frame pixels.
        labels: One label per box (``None``: box only).
        max_width: Wider frames are scaled down to this width first.
        quality: JPEG quality, 1-100.

    Raises:
        ValueError: If the frame cannot be encoded.
    """
    img = frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    scale = min(1.0, max_width / img.shape[1])
    if scale < 1.0:
        img = cv2.resize(img, (max_width, max(1, round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    else:
        img = img.copy()  # frames from the object store are read-only and shared
    thick = max(1, round(img.shape[1] / 320))
    for (x, y, w, h), label in zip(boxes, labels):
        p1 = (round(x * scale), round(y * scale))
        p2 = (round((x + w) * scale), round((y + h) * scale))
        cv2.rectangle(img, p1, p2, _BOX_BGR, thick)
        if label:
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            top = max(0, p1[1] - th - base - 4)
            cv2.rectangle(img, (p1[0], top), (p1[0] + tw + 6, top + th + base + 4), _BOX_BGR, -1)
            cv2.putText(img, label, (p1[0] + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _TEXT_BGR, 1,
                        cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {img.shape} frame as JPEG")
    return buf.tobytes()


class SnapshotWriter:
    """Decides per frame whether to store a snapshot, and stores it.

    Args:
        store: Registry reads and snapshot writes.
        ttl_s: Lifetime of a snapshot.
        min_interval_s: Fewest seconds between two snapshots of a camera.
        cache_s: How long a camera's ``keep_frames`` flag is cached.
        clock: Monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        store: SnapshotStore,
        ttl_s: int = DEFAULT_TTL_S,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        cache_s: float = DEFAULT_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._min_interval_s = min_interval_s
        self._cache_s = cache_s
        self._clock = clock
        self._flags: dict[str, tuple[bool, float]] = {}  # camera -> (keep_frames, read at)
        self._last_write: dict[str, float] = {}

    def wants(self, camera_id: str) -> bool:
        """Whether the camera opted in (cached ``cache_s``; unknown cameras never do)."""
        now = self._clock()
        cached = self._flags.get(camera_id)
        if cached is not None and now - cached[1] < self._cache_s:
            return cached[0]
        try:
            keep = bool(self._store.get_camera(camera_id).keep_frames)
        except CameraNotFound:
            keep = False
        self._flags[camera_id] = (keep, now)
        return keep

    def offer(
        self, camera_id: str, frame_bgr: np.ndarray, boxes: Sequence[BBox], track_ids: Sequence[int | None]
    ) -> bool:
        """Store an annotated snapshot of this frame if the camera opted in and one is due.

        Labels are the tracks' smoothed dominant emotions; a face not classified yet
        gets a box only.

        Returns:
            True when a snapshot was written.
        """
        now = self._clock()
        if now - self._last_write.get(camera_id, -1e18) < self._min_interval_s:
            return False
        if not self.wants(camera_id):
            return False
        known = [t for t in track_ids if t is not None]
        dominants = self._store.track_dominants(camera_id, known) if known else {}
        labels = [dominants.get(t) if t is not None else None for t in track_ids]
        jpeg = annotate(frame_bgr, boxes, labels)
        self._store.set_snapshot(camera_id, jpeg, self._ttl_s)
        self._last_write[camera_id] = now
        return True
