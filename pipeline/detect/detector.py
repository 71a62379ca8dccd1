"""Detection stage logic, free of Ray: detect, align, crop, track, publish.

:class:`DetectionStage` is what the ``FaceDetector`` Serve deployment wraps and what
:mod:`pipeline.detect.analyze` uses for offline files, so live streams and
offline analysis cut faces with exactly the same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from pipeline.contracts import FaceCrop
from pipeline.detect import tracker
from pipeline.detect.align import align_faces
from pipeline.detect.backends import DetectorBackend, create_backend
from pipeline.detect.exceptions import InvalidFrame, PublishError
from pipeline.detect.refine import refine_tilted
from pipeline.detect.schedule import FULL_SCAN, ScanPlan, after_scan, detect_regions, plan_scan
from pipeline.detect.types import DetectFailure, Detection, DetectResult, FrameMeta
from pipeline.settings import DetectSettings
from pipeline.store.exceptions import StoreError

__all__ = ["CollectingPublisher", "DetectionStage", "FacePublisher"]


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

    def detect_frame(self, frame_bgr: np.ndarray, plan: ScanPlan = FULL_SCAN) -> list[Detection]:
        """Faces of a BGR frame above the score threshold and ``min_face_px``.

        Args:
            frame_bgr: The frame.
            plan: Search the whole frame (default) or only the plan's regions, there with
                ``region_score_threshold``.

        Raises:
            InvalidFrame: ``frame_bgr`` is not a uint8 image.
        """
        _check_frame(frame_bgr)
        s = self.settings
        if plan.full:
            found, threshold = self.backend.detect(frame_bgr), s.score_threshold
        else:
            threshold = s.region_score_threshold
            found = detect_regions(self.backend, frame_bgr, plan.regions, s.region_px, threshold)
        # The backend already applied its threshold; repeating it keeps the
        # contract for backends (fakes, plugins) that do not.
        kept = [d for d in found if d.score >= threshold and min(d.bbox[2], d.bbox[3]) >= s.min_face_px]
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

        What is searched follows :func:`~pipeline.detect.schedule.plan_scan`: the whole
        frame when a full scan is due, else regions around the camera's tracked faces, else
        nothing (the reader normally does not send such frames).

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
        state = tracks or tracker.TrackerState()
        _check_frame(frame)
        plan = plan_scan(state, meta.ts, frame.shape[1], frame.shape[0], self.settings)
        if plan.idle:
            return DetectResult(0, (), (), state, scan="idle", timings={"total": _ms(t0)})
        detections = self.detect_frame(frame, plan)
        timings = {"detect": _ms(t0)}

        t = time.perf_counter()
        crops = self.crops(frame, detections)
        timings["align"] = _ms(t)

        t = time.perf_counter()
        new_tracks, track_ids = self.track(state, detections, meta.ts)
        new_tracks = after_scan(new_tracks, plan, track_ids, meta.ts, self.settings)
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
            scan="full" if plan.full else "regions",
            timings=timings,
        )

    def process_batch(
        self,
        frames: Sequence[np.ndarray],
        metas: Sequence[FrameMeta],
        tracks: Sequence[tracker.TrackerState | None],
        store: FacePublisher | None,
    ) -> list[DetectResult | DetectFailure]:
        """:meth:`process` for frames of several cameras, their faces published in one call.

        A frame that fails (not an image) gets a :class:`DetectFailure` and the others go on.
        One store call for the whole batch: when the store refuses it, every frame that had
        faces is marked ``publish_refused``.

        Raises:
            PublishError: The store failed (Redis down); nothing of the batch was published.
        """
        collected = CollectingPublisher()
        results: list[DetectResult | DetectFailure] = []
        for frame, meta, state in zip(frames, metas, tracks, strict=True):
            try:
                results.append(self.process(frame, meta, state, collected))
            except InvalidFrame as exc:
                results.append(DetectFailure(f"{type(exc).__name__}: {exc}"))
        if collected.crops and store is not None:
            try:
                refused = store.publish_faces(collected.crops) == 0
            except StoreError as exc:
                raise PublishError(f"cannot publish {len(collected.crops)} faces: {exc}") from exc
            if refused:
                results = [replace(r, publish_refused=True) if isinstance(r, DetectResult) and r.n_faces else r
                           for r in results]
        return results


class CollectingPublisher:
    """A :class:`FacePublisher` that keeps the crops: a batch's, published later in one store
    call, or a benchmark's, classified offline."""

    def __init__(self) -> None:
        self.crops: list[FaceCrop] = []

    def publish_faces(self, crops: list[FaceCrop]) -> int:
        self.crops.extend(crops)
        return len(crops)
