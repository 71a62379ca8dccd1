"""Value types of the ingest stage: stream states, frames, grabber statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pipeline.ingest.sources import Source
    from pipeline.settings import IngestSettings

__all__ = ["Capture", "CaptureFactory", "Frame", "GrabberStats", "StreamState"]


class StreamState(StrEnum):
    """Lifecycle of one camera stream."""

    CONNECTING = "connecting"  # first connection attempt, no frame yet
    LIVE = "live"  # frames arriving
    RECONNECTING = "reconnecting"  # lost (error, stall, EOF of a looped file) and retrying
    STOPPED = "stopped"  # stopped on request, or a file source reached its end
    FAILED = "failed"  # gave up: a file cannot be opened, or max_attempts exhausted


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the grabber uses (fakes implement this in tests)."""

    def read(self) -> tuple[bool, Any]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[["Source", "IngestSettings"], Capture]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``image`` is read-only: it is shared with every consumer."""

    image: np.ndarray
    frame_id: int  # monotonic per grabber, counts every valid frame read
    ts: float  # wall-clock time the frame was read (Unix seconds)
    mono: float  # time.monotonic() at read, for ages and rates


@dataclass(frozen=True, slots=True)
class GrabberStats:
    """A consistent snapshot of a grabber's counters."""

    state: StreamState
    frames_in: int
    fps_in: float
    corrupt: int
    read_failures: int
    reconnects: int
    stalls: int
    resolution_changes: int
    loops: int
    width: int
    height: int
    last_frame_ts: float
    last_error: str
    last_error_ts: float
