"""FER2013 faces through the live detection path: do camera-frame crops match the dataset's?

Each 48x48 face is upscaled 4x into a frame with a replicated border (optionally
rotated, like a tilted head), then found, aligned and cropped by
:class:`~pipeline.detect.detector.DetectionStage` exactly as in a camera frame, and
classified. Against the classifier on the original face this measures what detection,
alignment and resampling cost, on thousands of labelled faces rather than a few clips:
``emotionpipe eval --through-detector [--rotate DEG]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.classify.backends import ClassifierBackend
from pipeline.classify.metrics import Report, classification_report
from pipeline.contracts import LABELS
from pipeline.detect.detector import DetectionStage

__all__ = ["Reframed", "evaluate_reframed", "fer_frame", "reframe_faces", "rotate_face"]

UPSCALE = 4
# A face-width of border on each side: room for the detector's context and for rotation.
BORDER = 48 * UPSCALE // 2


def fer_frame(face: np.ndarray, angle_deg: float = 0.0) -> np.ndarray:
    """A BGR frame holding ``face`` (48x48 gray) upscaled, bordered and rotated by ``angle_deg``."""
    big = cv2.resize(face, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REPLICATE)
    if angle_deg:
        h, w = big.shape
        rot = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, 1.0)
        big = cv2.warpAffine(big, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def rotate_face(face: np.ndarray, angle_deg: float) -> np.ndarray:
    """``face`` rotated in place, with no alignment: the baseline that alignment must beat."""
    rot = cv2.getRotationMatrix2D((23.5, 23.5), angle_deg, 1.0)
    return cv2.warpAffine(face, rot, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class Reframed:
    """Classifier results through the detector, next to the same faces classified directly.

    ``report`` covers the faces the detector found; a missed face is a detection
    failure (counted in ``found``), not a wrong label.
    """

    total: int
    found: int
    angle_deg: float
    report: Report
    direct_accuracy: float  # the original 48x48 faces, same subset
    direct_recall: dict[str, float]  # per class, the original faces, same subset
    agreement: float  # share of found faces given the same label both ways
    rotated_accuracy: float | None  # rotated 48x48 faces without alignment (all faces), when rotated

    def as_dict(self) -> dict[str, object]:
        return {
            "through_detector": True, "rotate_deg": self.angle_deg, "faces": self.total, "found": self.found,
            "direct_accuracy": self.direct_accuracy, "direct_recall": self.direct_recall, "agreement": self.agreement,
            "rotated_unaligned_accuracy": self.rotated_accuracy, **self.report.as_dict(),
        }

    def format(self) -> str:
        lines = [
            f"faces found: {self.found} of {self.total} ({self.found / max(self.total, 1):.1%})",
            (
                f"on those faces: accuracy {self.report.accuracy:.4f} through the detector, "
                f"{self.direct_accuracy:.4f} on the original crops; same label for {self.agreement:.1%}"
            ),
        ]
        if self.rotated_accuracy is not None:
            lines.append(
                f"rotated {self.angle_deg:g} deg without alignment (all faces): accuracy {self.rotated_accuracy:.4f}"
            )
        # Which expressions the live framing costs (angry, in the issue that asked for this line).
        lines += ["", f"{'recall':<10}" + "".join(f"{label[:7]:>8}" for label in LABELS)]
        lines.append(f"{'detector':<10}" + "".join(f"{self.report.recall[label]:>8.3f}" for label in LABELS))
        lines.append(f"{'original':<10}" + "".join(f"{self.direct_recall[label]:>8.3f}" for label in LABELS))
        return "\n".join([*lines, "", self.report.format()])


def reframe_faces(detector: DetectionStage, faces: np.ndarray, angle_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pipeline crops ``(found, 48, 48)`` of each face's best detection, and the found mask ``(N,)``."""
    crops, found = [], np.zeros(len(faces), dtype=bool)
    for i, face in enumerate(tqdm(faces, desc="detecting", unit="face", leave=False, mininterval=1)):
        frame = fer_frame(face, angle_deg)
        detections = detector.detect_frame(frame)
        if detections:
            found[i] = True
            crops.append(detector.crops(frame, detections[:1])[0])
    return (np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8)), found


def evaluate_reframed(
    engine: ClassifierBackend, detector: DetectionStage, x: np.ndarray, y: np.ndarray, angle_deg: float = 0.0
) -> Reframed:
    """Classify ``x`` through the detector and directly; see :class:`Reframed`."""
    crops, found = reframe_faces(detector, x, angle_deg)
    direct = engine.predict(x[found]).argmax(1) if found.any() else np.zeros(0, np.int64)
    via = engine.predict(crops).argmax(1) if len(crops) else np.zeros(0, np.int64)
    rotated = None
    if angle_deg:
        rotated_pred = engine.predict(np.stack([rotate_face(f, angle_deg) for f in x])).argmax(1)
        rotated = float((rotated_pred == y).mean())
    direct_report = classification_report(y[found], direct)
    return Reframed(
        total=len(x), found=int(found.sum()), angle_deg=angle_deg, report=classification_report(y[found], via),
        direct_accuracy=direct_report.accuracy if len(direct) else 0.0, direct_recall=direct_report.recall,
        agreement=float((via == direct).mean()) if len(via) else 0.0, rotated_accuracy=rotated,
    )
