"""Detection stage logic, free of Ray: detect, align, crop, track, publish.

:class:`DetectionStage` is what the ``FaceDetector`` Serve deployment wraps and what
:mod:`pipeline.detect.analyze` uses for offline files, so live streams and
offline analysis cut faces with exactly the same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pipeline.contracts import FaceCrop
from pipeline.detect import tracker
from pipeline.detect.align import align_faces
from pipeline.detect.backends import DetectorBackend, create_backend
from pipeline.detect.exceptions import InvalidFrame, PublishError
from pipeline.detect.refine import refine_tilted
from pipeline.detect.types import Detection, DetectResult, FrameMeta
from pipeline.settings import DetectSettings
from pipeline.store.exceptions import StoreError

__all__ = ["DetectionStage", "FacePublisher"]


class FacePublisher(Protocol):
    """The part of :class:`pipeline.store.redis_store.RedisStore` this stage needs."""

    def publish_faces(self, crops: list[FaceCrop]) -> int:
        """Append crops to the faces stream; returns how many, 0 when refused.

        Raises:
            StoreError: the store failed (``StoreUnavailable`` when Redis cannot be reached).
        """
        ...


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InvalidFrame(f"expected a uint8 numpy frame, got {type(frame).__name__} {getattr(frame, 'dtype', '')}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)) or min(frame.shape[:2]) == 0:
        raise InvalidFrame(f"expected (H, W) or (H, W, 3), got {frame.shape}")


class DetectionStage:
    """Face detection, alignment and tracking for one process (the ``FaceDetector`` replica's logic).

    Args:
        settings: The ``detect`` section of the settings tree.
        backend: A ready backend (tests pass a fake); default: the one named by
            ``settings.backend``.
        refine_tilt_deg: Faces whose eye line is tilted more than this get
            their landmarks re-detected on an upright patch (see
            :mod:`pipeline.detect.refine`); ``None`` disables it.
    """

    def __init__(
        self, settings: DetectSettings, backend: DetectorBackend | None = None, refine_tilt_deg: float | None = 15.0
    ) -> None:
        self.settings = settings
        self.backend = backend if backend is not None else create_backend(settings)
        self.refine_tilt_deg = refine_tilt_deg

    def detect_frame(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Faces of a BGR frame above the score threshold and ``min_face_px``.

        Raises:
            InvalidFrame: ``frame_bgr`` is not a uint8 image.
        """
        _check_frame(frame_bgr)
        min_px = self.settings.min_face_px
        # The backend already applied its threshold; repeating it keeps the
        # contract for backends (fakes, plugins) that do not.
        kept = [
            d for d in self.backend.detect(frame_bgr)
            if d.score >= self.settings.score_threshold and min(d.bbox[2], d.bbox[3]) >= min_px
        ]
        if self.refine_tilt_deg is None:
            return kept
        return [refine_tilted(self.backend, frame_bgr, d, self.refine_tilt_deg) for d in kept]

    def crops(self, frame: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
        """Aligned gray crops ``(N, crop_size, crop_size)`` uint8, in ``detections`` order."""
        return align_faces(frame, detections, self.settings.crop_size)

    def track(
        self, tracks: tracker.TrackerState, detections: Sequence[Detection], ts: float
    ) -> tuple[tracker.TrackerState, list[int]]:
        """Advance the camera's tracker with this frame's faces."""
        return tracker.step(
            tracks, [d.bbox for d in detections], ts,
            iou_threshold=self.settings.track_iou, max_age_s=self.settings.track_max_age_s,
        )

    def process(
        self,
        frame: np.ndarray,
        meta: FrameMeta,
        tracks: tracker.TrackerState | None,
        store: FacePublisher | None,
    ) -> DetectResult:
        """Detect, align, track and publish the faces of one frame.

        Args:
            frame: BGR uint8 frame.
            meta: Camera id, frame id and capture time.
            tracks: The camera's tracker state after its previous frame
                (``None`` = a fresh camera).
            store: Where crops go; ``None`` skips publishing (dry runs).

        Returns:
            Boxes, track ids, the new tracker state and timings. When the
            store refuses the batch (backlog over its limit) ``publish_refused``
            is set; the tracker state still advances.

        Raises:
            InvalidFrame: The frame is not a uint8 image.
            PublishError: The store failed (Redis down), as opposed to refusing.
        """
        t0 = time.perf_counter()
        detections = self.detect_frame(frame)
        timings = {"detect": _ms(t0)}

        t = time.perf_counter()
        crops = self.crops(frame, detections)
        timings["align"] = _ms(t)

        t = time.perf_counter()
        new_tracks, track_ids = self.track(tracks or tracker.TrackerState(), detections, meta.ts)
        timings["track"] = _ms(t)

        refused = False
        t = time.perf_counter()
        if detections and store is not None:
            messages = [
                FaceCrop(
                    camera_id=meta.camera_id, frame_id=meta.frame_id, ts=meta.ts, face_idx=i,
                    bbox=det.bbox, det_score=round(det.score, 4), crop=crops[i].tobytes(),
                    crop_shape=(int(crops.shape[1]), int(crops.shape[2])), track_id=track_ids[i],
                )
                for i, det in enumerate(detections)
            ]
            try:
                published = store.publish_faces(messages)
            except StoreError as exc:
                raise PublishError(f"cannot publish {len(messages)} faces of {meta.camera_id}: {exc}") from exc
            refused = published == 0
        timings["publish"] = _ms(t)
        timings["total"] = _ms(t0)
        return DetectResult(
            n_faces=len(detections),
            boxes=tuple(d.bbox for d in detections),
            track_ids=tuple(track_ids),
            tracks=new_tracks,
            publish_refused=refused,
            timings=timings,
        )
