"""Per-camera IoU tracker as a pure function.

The StreamReader of a camera owns the :class:`TrackerState`; it sends it with
each frame and keeps the state returned with the result. The detector replicas
therefore stay stateless, so Serve may route consecutive frames of a camera to
different replicas (or restart one) without corrupting tracks.

Matching is greedy on IoU, best pair first. With the few faces per camera this
project expects, greedy gives the same assignment as the Hungarian method in
practice and needs no scipy. There is no motion model: at 5 fps a walking face
still overlaps its previous box, and ids are only used to count distinct people
and to smooth per-person emotions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.contracts import BBox

__all__ = ["Track", "TrackerState", "iou_matrix", "step"]


@dataclass(frozen=True, slots=True)
class Track:
    """One anonymous face track: an integer id, its last box and when it was last seen."""

    id: int
    bbox: BBox
    last_ts: float


@dataclass(frozen=True, slots=True)
class TrackerState:
    """The tracker's state for one camera: all live tracks plus the next id to hand out.

    Ids are unique per camera for the camera's lifetime (the StreamReader keeps
    the state), never reused, and carry no identity information. The scan times
    are :mod:`pipeline.detect.schedule`'s: when the whole frame was last searched
    and when it is due again (0 = on the next frame).
    """

    tracks: tuple[Track, ...] = ()
    next_id: int = 1
    last_full_scan_ts: float = 0.0
    next_full_scan_ts: float = 0.0


def iou_matrix(a: Sequence[BBox], b: Sequence[BBox]) -> np.ndarray:
    """Pairwise IoU of two lists of ``(x, y, w, h)`` boxes.

    Returns:
        float64 array of shape ``(len(a), len(b))``.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    aa = np.asarray(a, dtype=np.float64)
    bb = np.asarray(b, dtype=np.float64)
    ax1, ay1 = aa[:, 0:1], aa[:, 1:2]
    ax2, ay2 = ax1 + aa[:, 2:3], ay1 + aa[:, 3:4]
    bx1, by1 = bb[:, 0], bb[:, 1]
    bx2, by2 = bx1 + bb[:, 2], by1 + bb[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    union = (aa[:, 2:3] * aa[:, 3:4]) + (bb[:, 2] * bb[:, 3]) - inter
    # Degenerate (zero-area) boxes give union 0: define their IoU as 0, not NaN.
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _as_bbox(box: Sequence[int]) -> BBox:
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def _greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(track_idx, box_idx)``, highest IoU first, each side used once."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_t: set[int] = set()
    used_b: set[int] = set()
    for k in order:
        t, b = int(rows[k]), int(cols[k])
        if t in used_t or b in used_b:
            continue
        used_t.add(t)
        used_b.add(b)
        pairs.append((t, b))
    return pairs


def step(
    state: TrackerState,
    boxes: Sequence[BBox],
    ts: float,
    iou_threshold: float = 0.3,
    max_age_s: float = 2.0,
) -> tuple[TrackerState, list[int]]:
    """Advance a camera's tracks by one frame.

    Args:
        state: Tracks after the previous frame (``TrackerState()`` to start).
        boxes: This frame's face boxes ``(x, y, w, h)``.
        ts: Capture time of this frame (seconds).
        iou_threshold: Minimum IoU for a box to continue a track.
        max_age_s: Tracks not seen for longer than this are dropped before
            matching, so a new person in the same spot gets a new id.

    Returns:
        The new state and one track id per box, in ``boxes`` order.
    """
    # Expire first: an old track must not capture a newcomer. A frame older than
    # a track's last sighting (clock step, replayed file) gives a negative age and
    # keeps the track, which is the harmless choice.
    alive = [t for t in state.tracks if ts - t.last_ts <= max_age_s]
    iou = iou_matrix([t.bbox for t in alive], boxes)
    matches = _greedy_match(iou, iou_threshold)

    ids: list[int] = [0] * len(boxes)
    updated: dict[int, Track] = {}
    for t_idx, b_idx in matches:
        track = alive[t_idx]
        ids[b_idx] = track.id
        updated[t_idx] = Track(track.id, _as_bbox(boxes[b_idx]), ts)

    next_id = state.next_id
    new_tracks: list[Track] = []
    matched_boxes = {b for _, b in matches}
    for b_idx, box in enumerate(boxes):
        if b_idx in matched_boxes:
            continue
        ids[b_idx] = next_id
        new_tracks.append(Track(next_id, _as_bbox(box), ts))
        next_id += 1

    kept = [updated.get(i, t) for i, t in enumerate(alive)]
    return replace(state, tracks=tuple(kept + new_tracks), next_id=next_id), ids
