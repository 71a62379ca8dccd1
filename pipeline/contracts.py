"""Versioned msgpack message contracts that cross process boundaries.

Every message carries ``v``, ``camera_id``, ``frame_id`` and ``ts`` (capture
time, Unix seconds). Decoding validates strictly: a consumer turns a
:class:`~pipeline.exceptions.ContractError` into a dead-letter entry instead of
crashing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import msgpack

from pipeline.exceptions import ContractError

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SCHEMA_VERSION = 1
#: Name of the Ray Serve application holding the detector, classifier and API: the stack
#: deploys under it and the camera readers look the ``FaceDetector`` deployment up in it.
APP_NAME = "emotionpipe"

#: ``(x, y, w, h)`` in frame pixels: the one box type of every stage.
BBox = tuple[int, int, int, int]


def _require(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in payload:
        raise ContractError(f"missing field {key!r}")
    value = payload[key]
    # bool is an int subclass; a frame id of True is a bug, not a frame id.
    if isinstance(value, bool) and kind is not bool:
        raise ContractError(f"field {key!r} has type bool")
    if not isinstance(value, kind):
        raise ContractError(f"field {key!r} has type {type(value).__name__}")
    return value


def _unpack(data: bytes, kind: str) -> dict[str, Any]:
    try:
        payload = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ContractError(f"{kind}: not msgpack ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise ContractError(f"{kind}: expected a map, got {type(payload).__name__}")
    version = payload.get("v")
    if version != SCHEMA_VERSION:
        raise ContractError(f"{kind}: unsupported schema version {version!r} (expected {SCHEMA_VERSION})")
    return payload


def _header(payload: dict[str, Any]) -> tuple[str, int, float]:
    camera_id = _require(payload, "camera_id", str)
    frame_id = _require(payload, "frame_id", int)
    ts = float(_require(payload, "ts", (int, float)))
    if not camera_id or frame_id < 0 or not math.isfinite(ts):
        raise ContractError("invalid header (camera_id, frame_id or ts)")
    return camera_id, frame_id, ts


def _track_id(payload: dict[str, Any]) -> int | None:
    track_id = payload.get("track_id")
    if track_id is not None and (not isinstance(track_id, int) or isinstance(track_id, bool)):
        raise ContractError("track_id must be an integer or null")
    return track_id


def _bbox(payload: dict[str, Any]) -> BBox:
    raw = _require(payload, "bbox", (list, tuple))
    if len(raw) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise ContractError("bbox must be 4 integers (x, y, w, h)")
    return (raw[0], raw[1], raw[2], raw[3])


@dataclass(frozen=True, slots=True)
class FaceCrop:
    """One aligned face cut from a frame, on its way to the classifier."""

    camera_id: str
    frame_id: int
    ts: float
    face_idx: int
    bbox: BBox
    det_score: float
    crop: bytes
    crop_shape: tuple[int, int]
    track_id: int | None = None
    v: int = SCHEMA_VERSION

    KIND: ClassVar[str] = "FaceCrop"

    def encode(self) -> bytes:
        payload = asdict(self)
        payload["bbox"] = list(self.bbox)
        payload["crop_shape"] = list(self.crop_shape)
        return msgpack.packb(payload, use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> FaceCrop:
        payload = _unpack(data, cls.KIND)
        camera_id, frame_id, ts = _header(payload)
        shape = _require(payload, "crop_shape", (list, tuple))
        if len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ContractError("crop_shape must be two positive integers")
        crop = _require(payload, "crop", bytes)
        if len(crop) != shape[0] * shape[1]:
            raise ContractError(f"crop has {len(crop)} bytes, shape {shape} needs {shape[0] * shape[1]}")
        track_id = _track_id(payload)
        return cls(
            camera_id=camera_id,
            frame_id=frame_id,
            ts=ts,
            face_idx=_require(payload, "face_idx", int),
            bbox=_bbox(payload),
            det_score=float(_require(payload, "det_score", (int, float))),
            crop=crop,
            crop_shape=(shape[0], shape[1]),
            track_id=track_id,
        )


@dataclass(frozen=True, slots=True)
class EmotionResult:
    """The classifier's verdict on one face."""

    camera_id: str
    frame_id: int
    ts: float
    face_idx: int
    bbox: BBox
    probs: tuple[float, ...]
    model: str
    track_id: int | None = None
    v: int = SCHEMA_VERSION
    extra: dict[str, float] = field(default_factory=dict)

    KIND: ClassVar[str] = "EmotionResult"

    @property
    def label(self) -> str:
        return LABELS[max(range(len(self.probs)), key=self.probs.__getitem__)]

    def encode(self) -> bytes:
        payload = asdict(self)
        payload["bbox"] = list(self.bbox)
        payload["probs"] = list(self.probs)
        return msgpack.packb(payload, use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> EmotionResult:
        payload = _unpack(data, cls.KIND)
        camera_id, frame_id, ts = _header(payload)
        probs = _require(payload, "probs", (list, tuple))
        if len(probs) != len(LABELS) or not all(isinstance(p, (int, float)) for p in probs):
            raise ContractError(f"probs must be {len(LABELS)} numbers")
        track_id = _track_id(payload)
        extra = payload.get("extra") or {}
        if not isinstance(extra, dict):
            raise ContractError("extra must be a map")
        return cls(
            camera_id=camera_id,
            frame_id=frame_id,
            ts=ts,
            face_idx=_require(payload, "face_idx", int),
            bbox=_bbox(payload),
            probs=tuple(float(p) for p in probs),
            model=_require(payload, "model", str),
            track_id=track_id,
            extra=extra,
        )
