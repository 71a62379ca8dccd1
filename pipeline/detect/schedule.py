"""Where to look for faces in a frame: the whole frame now and then, small regions around tracked faces between.

RetinaFace's cost is linear in pixels: a 640x480 frame costs ~20 ms of a core, a 192 px region
~2 ms. Detecting the whole frame of a camera at most every ``detect.full_scan_interval_s``
and, on the frames in between, only regions around the faces it tracks keeps fresh boxes and
landmarks (so alignment and tracks stay as good) at a fraction of the cost. DeepStream's
nvinfer ``interval`` with a tracker and Frigate's region detection are the precedents.

The plan is a pure function of the camera's :class:`~pipeline.detect.tracker.TrackerState`
and the frame's capture time, so the StreamReader (which owns the state) can tell, without a
request, that a frame has nothing to look at (no tracked face, no full scan due: an empty room
costs one full scan per interval), and the stateless detector replica computes the same plan
for the frames it is sent.

A full scan also comes early when a region pass lost a face that the previous result had (it
moved fast or left the region), at most every ``_RESCAN_GAP_S``; a face that appears is found by
the next full scan, so within one interval. A lost face's region is still searched (cheaply)
until the tracker closes its track.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from pipeline.contracts import BBox
from pipeline.detect.backends import DetectorBackend
from pipeline.detect.tracker import TrackerState, iou_matrix
from pipeline.detect.types import Detection
from pipeline.settings import DetectSettings

__all__ = ["CameraSchedule", "ScanPlan", "after_scan", "detect_regions", "plan_scan", "region_around"]

# Full scans come at (0.75..1) x the interval: cameras started together drift apart instead of
# all scanning on the same tick, and no camera waits longer than the interval.
_JITTER = 0.25
# A lost face triggers a full scan at most this often (a face that left would otherwise cost a
# full scan on every other frame until its track expires).
_RESCAN_GAP_S = 0.4
# Faces found by two overlapping regions are one face.
_SAME_FACE_IOU = 0.5
_GRID = 32  # RetinaFace's coarsest stride
# Small faces get context around them: in tight regions RetinaFace missed 15 % of crowd.mp4's faces.
_MIN_REGION_PX = 4 * _GRID
# Past this many tracked faces one full scan is cheaper and finds small faces better than many
# tiny regions (measured on crowd.mp4: regions kept 78 % of the faces).
_MAX_REGIONS = 8
# Full scans stretch apart at most this much when a camera's frames are dropped (over capacity).
_MAX_STRETCH = 4.0
# An inference call costs about as much as this many pixels (pre/post-processing, session run).
_CALL_COST_PX = 8_000


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What to detect in one frame.

    Attributes:
        full: Search the whole frame.
        regions: Otherwise, the ``(x, y, w, h)`` frame regions to search; none (and not
            ``full``) means there is nothing to look for in this frame.
        track_ids: The tracks whose faces the regions are around (same order).
        fresh_ids: Those of them found in the camera's latest result: losing one of these
            brings the next full scan forward (a face lost earlier already did).
    """

    full: bool
    regions: tuple[BBox, ...] = ()
    track_ids: tuple[int, ...] = ()
    fresh_ids: tuple[int, ...] = ()

    @property
    def idle(self) -> bool:
        """Nothing to detect: no full scan due and no tracked face."""
        return not self.full and not self.regions


FULL_SCAN = ScanPlan(full=True)


def region_around(bbox: BBox, frame_w: int, frame_h: int, scale: float) -> BBox:
    """``bbox`` grown ``scale`` times about its centre, on the detector's grid, clipped to the frame.

    Corners snap outwards to multiples of the detector's coarsest stride: a region searched at
    full resolution then puts the face on the same anchors as a full scan does, so boxes and
    landmarks (hence alignment, hence labels) come out as a full scan would give them.
    """
    x, y, w, h = bbox
    half_w, half_h = max(w * scale, _MIN_REGION_PX) / 2, max(h * scale, _MIN_REGION_PX) / 2
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = _snap_down(cx - half_w), _snap_down(cy - half_h)
    x1, y1 = min(frame_w, _snap_up(cx + half_w)), min(frame_h, _snap_up(cy + half_h))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def _snap_down(v: float) -> int:
    return max(0, int(v) // _GRID * _GRID)


def _snap_up(v: float) -> int:
    return -(-int(np.ceil(v)) // _GRID) * _GRID


def plan_scan(state: TrackerState, ts: float, frame_w: int, frame_h: int, settings: DetectSettings) -> ScanPlan:
    """The scan for a frame captured at ``ts``, given the camera's state after its previous frame.

    Full when the interval is 0 (every frame), when a full scan is due, or when searching the
    regions around the tracked faces would cost half as much as the whole frame anyway (crowds).
    """
    interval = settings.full_scan_interval_s
    if interval <= 0 or ts >= state.next_full_scan_ts:
        return FULL_SCAN
    # Recent = seen in the camera's latest results, not in the last region_max_gap_s of wall time:
    # when detection lags (overload), results are older than the frame being planned, and
    # judging them by this frame's time would drop every region and turn the load into full scans.
    newest = max((t.last_ts for t in state.tracks), default=0.0)
    recent = [t for t in state.tracks
              if newest - t.last_ts <= settings.region_max_gap_s and ts - t.last_ts <= settings.track_max_age_s]
    regions = [region_around(t.bbox, frame_w, frame_h, settings.region_scale) for t in recent]
    kept = [(r, t.id) for r, t in zip(regions, recent, strict=True) if r[2] > 0 and r[3] > 0]
    if len(kept) > _MAX_REGIONS or sum(_region_cost(r, settings.region_px) for r, _ in kept) > 0.5 * frame_w * frame_h:
        return FULL_SCAN
    fresh = tuple(t.id for t in recent if t.last_ts == newest)
    return ScanPlan(full=False, regions=tuple(r for r, _ in kept), track_ids=tuple(i for _, i in kept),
                    fresh_ids=fresh)


def after_scan(
    state: TrackerState, plan: ScanPlan, found_ids: Sequence[int], ts: float, settings: DetectSettings,
    rng: random.Random | None = None,
) -> TrackerState:
    """``state`` (already advanced by the tracker) with the next full scan scheduled.

    After a full scan the next one is due within the interval (jittered); after a region pass
    that lost a face found in the previous result, as soon as the rescan gap allows.
    """
    interval = settings.full_scan_interval_s
    if plan.full:
        jitter = 1.0 - _JITTER * (rng or random).random()
        return replace(state, last_full_scan_ts=ts, next_full_scan_ts=ts + interval * jitter)
    if set(plan.fresh_ids) - set(found_ids):
        due = max(ts, state.last_full_scan_ts + _RESCAN_GAP_S)
        return replace(state, next_full_scan_ts=min(state.next_full_scan_ts, due))
    return state


class CameraSchedule:
    """The reader's side of the schedule for one camera: which frames to send, and with what state.

    Frames with nothing to look at are not sent. Only one full scan is in flight at a time:
    until its result comes back (or an interval passes), later frames are sent with the full
    scan marked as done, so the replica searches their regions only. Without that, when
    detection lags behind, every frame sent before the result returns would be a full scan,
    and an overloaded detector would get more expensive work the more it lags.

    Past capacity the camera gets fewer frames through (the rest are dropped before they reach
    this schedule); full scans then stretch apart in proportion, up to ``_MAX_STRETCH`` times
    the interval, so they stay about the same share of the work instead of crowding out the
    tracked regions (a new face takes longer to be found meanwhile).

    Args:
        settings: The detect section.
        fps: The camera's sampling rate.
    """

    def __init__(self, settings: DetectSettings, fps: float) -> None:
        self._settings = settings
        self._period = 1.0 / fps
        self._full_sent_ts = float("-inf")
        self._last_ts: float | None = None
        self._gap = self._period  # smoothed time between the frames that reach the schedule

    @property
    def stretch(self) -> float:
        """How far full scans are stretched apart now (1 = as configured: frames arrive at the fps,
        give or take the scheduling jitter)."""
        ratio = self._gap / self._period
        return 1.0 if ratio < 1.1 else min(_MAX_STRETCH, ratio)

    def prepare(self, state: TrackerState | None, ts: float, frame_w: int, frame_h: int) -> TrackerState | None:
        """The state to send with the frame captured at ``ts``, or None when it needs no detection."""
        if self._last_ts is not None and ts > self._last_ts:
            self._gap = 0.8 * self._gap + 0.2 * (ts - self._last_ts)
        self._last_ts = ts
        state = state or TrackerState()
        stretch = self.stretch
        interval = self._settings.full_scan_interval_s * stretch
        if interval > 0 and state.last_full_scan_ts < self._full_sent_ts and ts < self._full_sent_ts + interval:
            # a full scan is in flight
            state = replace(state, next_full_scan_ts=self._full_sent_ts + interval)
        elif stretch > 1.0 and state.last_full_scan_ts > 0:
            # over capacity: the replica's schedule (its jitter, an early rescan) drawn out in time
            last = state.last_full_scan_ts
            state = replace(state, next_full_scan_ts=last + (state.next_full_scan_ts - last) * stretch)
        plan = plan_scan(state, ts, frame_w, frame_h, self._settings)
        if plan.idle:
            return None
        if plan.full:
            self._full_sent_ts = ts
        return state


def _region_cost(region: BBox, region_px: int) -> float:
    """Pixels the detector sees for a region (after shrinking), plus a fixed cost per call."""
    w, h = region[2], region[3]
    scale = min(1.0, region_px / max(w, h))
    return w * h * scale * scale + _CALL_COST_PX


def _region_patch(frame: np.ndarray, region: BBox, region_px: int) -> tuple[np.ndarray, float]:
    x, y, w, h = region
    patch = frame[y:y + h, x:x + w]
    scale = min(1.0, region_px / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # INTER_AREA: no aliasing when shrinking a large face to detector size.
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    return patch, scale


def detect_regions(
    backend: DetectorBackend, frame: np.ndarray, regions: Sequence[BBox], region_px: int, score_threshold: float
) -> list[Detection]:
    """Faces found in ``regions`` of ``frame``, in frame coordinates, best first, duplicates merged.

    Each region is shrunk so its longer side is at most ``region_px`` (a face filling half of
    it is still ~90 px: well inside RetinaFace's range).
    """
    h, w = frame.shape[:2]
    found: list[Detection] = []
    for region in regions:
        patch, scale = _region_patch(frame, region, region_px)
        offset = np.asarray(region[:2], dtype=np.float32)
        for d in backend.detect(patch, score_threshold):
            bx, by, bw, bh = (v / scale for v in d.bbox)
            x0, y0 = max(0, round(bx + region[0])), max(0, round(by + region[1]))
            x1, y1 = min(w, round(bx + bw + region[0])), min(h, round(by + bh + region[1]))
            if x1 <= x0 or y1 <= y0:
                continue
            found.append(Detection(bbox=(x0, y0, x1 - x0, y1 - y0), score=d.score,
                                   landmarks=(d.landmarks / scale + offset).astype(np.float32)))
    found.sort(key=lambda d: -d.score)
    kept: list[Detection] = []
    for d in found:
        if not kept or iou_matrix([d.bbox], [k.bbox for k in kept]).max() < _SAME_FACE_IOU:
            kept.append(d)
    return kept
