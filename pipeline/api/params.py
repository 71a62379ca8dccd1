"""Query parameters shared by several routers: windows and steps as durations.

Durations arrive as text (``30s``, ``5m``, ``1h``, ``24h`` or plain seconds) and are parsed
in the route with :func:`~pipeline.aggregate.windows.parse_duration`; its
``InvalidDuration`` becomes a 422 whose message names the parameter and the bounds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from pipeline.aggregate.buckets import MAX_WINDOW_S
from pipeline.aggregate.windows import MIN_WINDOW_S, parse_duration

WindowQuery = Annotated[
    str,
    Query(description="Window ending now: 30s, 5m, 1h, 24h or seconds (10 s … 24 h).", examples=["5m"]),
]
StepQuery = Annotated[
    str | None,
    Query(description="Bucket step: 1s … the window (rounded up to whole buckets); default one bucket.",
          examples=["10s"]),
]


def window_seconds(value: str) -> float:
    """Parse a ``window`` parameter (10 s … 24 h)."""
    return parse_duration(value, name="window")


def step_seconds(value: str | None, hi: float = MAX_WINDOW_S) -> float | None:
    """Parse an optional ``step`` parameter (1 s … ``hi``)."""
    if value is None or value == "":
        return None
    return parse_duration(value, name="step", lo=1, hi=max(hi, 1))


__all__ = ["MIN_WINDOW_S", "StepQuery", "WindowQuery", "step_seconds", "window_seconds"]
