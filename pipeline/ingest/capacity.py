"""Is the pipeline keeping up with its cameras? A report from the cameras' own health.

Past capacity the readers drop frames (detection saturated: a camera's frames in flight are at
their limit) and the detectors skip frames that waited too long; each camera reports both as
``fps_dropped``. The pipeline is over capacity when the cameras together drop more than a
small share of the frames they are asked to sample; what it processes then is what it can
sustain, which gives the camera count it would keep up with at the cameras' mean rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CapacityReport", "OVER_CAPACITY_DROP_SHARE", "capacity_report"]

#: Dropping more than this share of the requested frames is "over capacity" (a few drops come
#: from scheduling jitter even with spare CPU).
OVER_CAPACITY_DROP_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class CapacityReport:
    """Frame rates summed over the live cameras.

    Attributes:
        cameras: Cameras whose reader is live.
        demand_fps: Frames per second they are asked to sample (their fps).
        processed_fps: Frames per second processed (sent to detection or idle).
        dropped_fps: Frames per second dropped (detection saturated, or too old when reached).
        over_capacity: ``dropped_fps`` above :data:`OVER_CAPACITY_DROP_SHARE` of the demand.
        sustainable_cameras: When over capacity, the cameras the processed rate would serve in
            full at their mean fps; None when the pipeline keeps up (its headroom is unknown).
    """

    cameras: int
    demand_fps: float
    processed_fps: float
    dropped_fps: float
    over_capacity: bool
    sustainable_cameras: int | None


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def capacity_report(healths: Iterable[Mapping[str, Any]]) -> CapacityReport:
    """Sum the health hashes of the cameras (those not live are left out)."""
    live = [h for h in healths if h.get("state") == "live"]
    demand = sum(_num(h.get("fps_target")) for h in live)
    processed = sum(_num(h.get("fps_out")) for h in live)
    dropped = sum(_num(h.get("fps_dropped")) for h in live)
    over = demand > 0 and dropped > OVER_CAPACITY_DROP_SHARE * demand
    sustainable = math.floor(processed / (demand / len(live))) if over else None
    return CapacityReport(
        cameras=len(live), demand_fps=round(demand, 2), processed_fps=round(processed, 2),
        dropped_fps=round(dropped, 2), over_capacity=over, sustainable_cameras=sustainable,
    )
