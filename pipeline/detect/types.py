"""Value types of the detection stage.

They cross Ray process boundaries (StreamReader actor -> FaceDetector replica and
back), so they are small frozen dataclasses that pickle cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pipeline.contracts import BBox
from pipeline.detect.tracker import TrackerState

__all__ = ["BBox", "DetectFailure", "Detection", "DetectResult", "FrameMeta", "TrackerState"]


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """One face found in a frame.

    Attributes:
        bbox: ``(x, y, w, h)`` in frame pixels, clipped to the frame.
        score: Detector confidence in [0, 1].
        landmarks: ``(5, 2)`` float32 array of ``(x, y)`` frame pixels in the
            RetinaFace order: left eye, right eye, nose, mouth left, mouth
            right ("left" = image left for an upright face, i.e. the person's
            right eye).
    """

    bbox: BBox
    score: float
    landmarks: np.ndarray

    @property
    def eye_centres(self) -> np.ndarray:
        """``(2, 2)`` left and right eye points."""
        return self.landmarks[:2]


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """Identity of a frame: which camera, which frame, when it was captured."""

    camera_id: str
    frame_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class DetectResult:
    """What :meth:`FaceDetector.process` reports back to the StreamReader.

    Attributes:
        n_faces: Faces kept after score and size filtering.
        boxes: Their ``(x, y, w, h)`` boxes, in face_idx order.
        track_ids: Track id of each face (same order as ``boxes``).
        tracks: Tracker state to pass with the camera's next frame.
        publish_refused: True when the store refused the crops (backlog full);
            the faces were detected but will not be classified.
        skipped_stale: True when the frame was older than ``detect.max_frame_age_s``
            when its turn came: nothing was detected, the tracker state is unchanged.
        scan: What was searched (:mod:`pipeline.detect.schedule`): the whole frame, regions
            around tracked faces, or nothing ("idle").
        timings: Milliseconds per phase (``detect``, ``align``, ``track``,
            ``publish``, ``total``).
    """

    n_faces: int
    boxes: tuple[BBox, ...]
    track_ids: tuple[int, ...]
    tracks: TrackerState
    publish_refused: bool = False
    skipped_stale: bool = False
    scan: Literal["full", "regions", "idle"] = "full"
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DetectFailure:
    """One frame of a batch that could not be processed (the others were); ``message`` is redacted."""

    message: str
