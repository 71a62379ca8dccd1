"""Face detector backends as plugins chosen by a ``type`` name.

A backend is a class with a ``type`` class attribute, built from
:class:`~pipeline.settings.DetectSettings`, whose :meth:`detect` turns a BGR
frame into :class:`~pipeline.detect.types.Detection` objects. Backends register
themselves with :func:`register_backend` (frigate's ``detector_types`` idea).
Built-in backends living in their own modules are imported lazily by
:func:`create_backend`, so importing this module never loads onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from pipeline.common.plugins import PluginRegistry
from pipeline.detect.exceptions import BackendLoadError, UnknownBackend
from pipeline.detect.types import Detection
from pipeline.settings import DetectSettings

__all__ = [
    "DetectorBackend",
    "FakeBackend",
    "available_backends",
    "create_backend",
    "register_backend",
]


@runtime_checkable
class DetectorBackend(Protocol):
    """What every face detector backend provides."""

    type: ClassVar[str]

    def detect(self, frame_bgr: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """All faces above the score threshold, best first.

        Args:
            frame_bgr: uint8 array ``(H, W, 3)`` in OpenCV's BGR order.
            score_threshold: This call's threshold; default the backend's (``detect.score_threshold``).
                Regions around tracked faces are searched with a lower one.
        """
        ...


# Built-ins defined in modules of their own, imported on first use (they pull
# heavy dependencies that fast unit tests and the API process never need).
_BACKENDS: PluginRegistry[DetectSettings, DetectorBackend] = PluginRegistry(
    "detector backend", {"retinaface": "pipeline.detect.retinaface_backend"}, UnknownBackend, BackendLoadError
)

#: Class decorator registering a backend under a type name; the class must accept a
#: :class:`DetectSettings` as its only required constructor argument.
register_backend = _BACKENDS.register
#: Names that :func:`create_backend` accepts.
available_backends = _BACKENDS.names


def create_backend(settings: DetectSettings) -> DetectorBackend:
    """Build the backend named by ``settings.backend``.

    Raises:
        UnknownBackend: No backend of that name exists.
        BackendLoadError: The backend's module or model could not be loaded.
    """
    return _BACKENDS.create(settings)


# Where the five landmarks sit inside a face box, as fractions of (w, h); rough
# RetinaFace averages, good enough for a fake face to align like a real one.
_FAKE_LANDMARKS = np.array(
    [[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32
)


@register_backend("fake")
class FakeBackend:
    """Deterministic stand-in for unit tests: no model, no onnxruntime.

    By default it "finds" one face in the middle of every frame that is not
    entirely black (an all-zero frame has no faces), box side 40 % of the
    shorter frame side. Tests may instead pass fixed boxes.
    """

    type: ClassVar[str] = "fake"

    def __init__(
        self,
        settings: DetectSettings | None = None,
        boxes: Sequence[tuple[int, int, int, int]] | None = None,
        score: float = 0.99,
    ) -> None:
        self._boxes = None if boxes is None else [(int(x), int(y), int(w), int(h)) for x, y, w, h in boxes]
        self._score = score

    @staticmethod
    def landmarks_for(box: tuple[int, int, int, int]) -> np.ndarray:
        """Plausible ``(5, 2)`` landmarks of an upright face filling ``box``."""
        x, y, w, h = box
        return (_FAKE_LANDMARKS * np.array([w, h], np.float32) + np.array([x, y], np.float32)).astype(np.float32)

    def detect(self, frame_bgr: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """The fixed boxes, or one centred face unless the frame is all black (the threshold is ignored)."""
        boxes: list[tuple[int, int, int, int]]
        if self._boxes is not None:
            boxes = self._boxes
        elif not frame_bgr.any():
            boxes = []
        else:
            h, w = frame_bgr.shape[:2]
            side = int(0.4 * min(h, w))
            boxes = [((w - side) // 2, (h - side) // 2, side, side)]
        return [Detection(bbox=b, score=self._score, landmarks=self.landmarks_for(b)) for b in boxes]
