"""Offline analysis of image and video files with the pipeline's own code.

Faces are detected, aligned and cropped by :class:`DetectionStage` exactly as on
live streams, then classified by an engine; per-face results come back as
plain dataclasses (``to_dict()`` for JSON). Used by the CLI and by evaluation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.classify.backends import ClassifierBackend
from pipeline.contracts import LABELS
from pipeline.detect import tracker
from pipeline.detect.detector import DetectionStage
from pipeline.detect.exceptions import MediaError
from pipeline.detect.types import Detection

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FaceAnalysis",
    "FileAnalysis",
    "FileSummary",
    "analyze_paths",
    "classify_crops",
    "summarize",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
# Crops are classified in chunks so a long video never builds one huge batch.
_CHUNK = 256


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    """One face in one frame of a file."""

    frame_index: int
    time_s: float
    bbox: tuple[int, int, int, int]
    det_score: float
    track_id: int
    label: str
    probs: dict[str, float]


@dataclass(slots=True)
class FileAnalysis:
    """Everything found in one file; ``error`` is set (and ``faces`` empty) when it could not be read."""

    path: str
    kind: str
    model: str
    width: int = 0
    height: int = 0
    fps: float | None = None
    frames_analyzed: int = 0
    faces: list[FaceAnalysis] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FileSummary:
    """Per-file aggregate over all faces found in it."""

    faces: int
    dominant: str | None
    mean_probs: dict[str, float]
    label_counts: dict[str, int]


def summarize(result: FileAnalysis) -> FileSummary:
    """Dominant label (soft vote), mean probabilities and per-label face counts of one file.

    The soft vote (argmax of the mean probabilities) is less jumpy than counting argmax labels
    when a short clip gives a handful of faces and two emotions are close.
    """
    if not result.faces:
        return FileSummary(faces=0, dominant=None, mean_probs={}, label_counts={})
    probs = np.array([[f.probs[label] for label in LABELS] for f in result.faces], dtype=np.float64)
    mean = probs.mean(axis=0)
    counts = Counter(f.label for f in result.faces)
    return FileSummary(
        faces=len(result.faces),
        dominant=LABELS[int(mean.argmax())],
        mean_probs={label: round(float(p), 4) for label, p in zip(LABELS, mean, strict=True)},
        label_counts={label: counts[label] for label in LABELS if counts[label]},
    )



def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(c for c in p.iterdir() if c.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
        else:
            yield p


def _open_video(path: Path) -> tuple[cv2.VideoCapture, float]:
    """An opened capture and its frame rate (25 when the container does not say).

    Raises:
        MediaError: The file cannot be opened as a video.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MediaError(f"cannot open video {path}")
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return cap, fps if np.isfinite(fps) and fps > 0 else 25.0


def _video_frames(
    cap: cv2.VideoCapture, fps: float, sample_fps: float, max_frames: int | None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame_index, time_s, frame)`` sampled at about ``sample_fps``; releases ``cap``."""
    try:
        step = max(fps / sample_fps, 1.0)
        index, next_pick, emitted = 0, 0.0, 0
        # grab() every frame but retrieve() only the sampled ones: seeking is
        # unreliable in many containers, and retrieve is the costly part.
        while cap.grab():
            if index + 1e-6 >= next_pick:
                ok, frame = cap.retrieve()
                if ok:
                    yield index, index / fps, frame
                    emitted += 1
                    if max_frames is not None and emitted >= max_frames:
                        return
                next_pick += step
            index += 1
    finally:
        cap.release()


def classify_crops(engine: ClassifierBackend, crops: list[np.ndarray]) -> np.ndarray:
    """Probabilities ``(N, 7)`` for 48x48 crops, in bounded chunks (a long video's crops never form one batch)."""
    if not crops:
        return np.zeros((0, len(LABELS)), dtype=np.float32)
    batch = np.stack(crops)
    return np.concatenate([np.asarray(engine.predict(batch[i:i + _CHUNK])) for i in range(0, len(batch), _CHUNK)])


def analyze_file(
    path: str | Path,
    detector: DetectionStage,
    engine: ClassifierBackend,
    sample_fps: float = 2.0,
    max_frames: int | None = None,
) -> FileAnalysis:
    """Analyse one image or video; read errors are reported in ``error``, not raised."""
    path = Path(path)
    is_image = path.suffix.lower() in IMAGE_EXTENSIONS
    result = FileAnalysis(path=str(path), kind="image" if is_image else "video", model=engine.name)
    if is_image:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            result.error = f"cannot read image {path}"
            return result
        frames: Iterable[tuple[int, float, np.ndarray]] = [(0, 0.0, image)]
    else:
        try:
            cap, result.fps = _open_video(path)
        except MediaError as exc:
            result.error = str(exc)
            return result
        frames = _video_frames(cap, result.fps, sample_fps, max_frames)

    found: list[tuple[int, float, Detection, int]] = []
    crops: list[np.ndarray] = []
    tracks = tracker.TrackerState()
    for index, t_s, frame in frames:
        result.height, result.width = frame.shape[:2]
        result.frames_analyzed += 1
        detections = detector.detect_frame(frame)
        crops.extend(detector.crops(frame, detections))
        # Track ids link a person's faces across sampled frames of a video.
        tracks, ids = detector.track(tracks, detections, t_s)
        found.extend((index, t_s, d, tid) for d, tid in zip(detections, ids, strict=True))
    if not is_image and result.frames_analyzed == 0:
        result.error = f"no decodable frames in {path}"

    probs = classify_crops(engine, crops)
    for (index, t_s, det, tid), p in zip(found, probs, strict=True):
        result.faces.append(FaceAnalysis(
            frame_index=index, time_s=round(t_s, 3), bbox=det.bbox, det_score=round(det.score, 4), track_id=tid,
            label=LABELS[int(np.argmax(p))], probs={lab: round(float(v), 4) for lab, v in zip(LABELS, p, strict=True)},
        ))
    return result


def analyze_paths(
    paths: Iterable[str | Path],
    detector: DetectionStage,
    engine: ClassifierBackend,
    sample_fps: float = 2.0,
    max_frames: int | None = None,
) -> list[FileAnalysis]:
    """Analyse images and videos (directories are expanded to their media files).

    Args:
        paths: Files or directories.
        detector: The pipeline's detector (same detect/align/crop code as live).
        engine: Any classifier backend (``predict((N, 48, 48) uint8) -> (N, 7)``; ``name`` is reported).
        sample_fps: Frames per second analysed in videos.
        max_frames: Cap on analysed frames per video (``None`` = whole video).

    Returns:
        One :class:`FileAnalysis` per file, in input order.
    """
    return [analyze_file(p, detector, engine, sample_fps, max_frames) for p in _expand(paths)]
