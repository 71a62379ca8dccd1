"""Durations (``30s``, ``5m``, ``1h``, ``24h`` or plain seconds), time points and resampling.

Shared by the API (window/step query parameters, export ranges), the alert rules
(window, cooldown) and the CLI, so ``5m`` means the same everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pipeline.aggregate.buckets import MAX_WINDOW_S, MINUTE, BucketTotals, bucket_start

#: Shortest window a summary or time series may cover.
MIN_WINDOW_S = 10.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


class InvalidDuration(ValueError):
    """A duration or time point cannot be parsed or is out of bounds (the message says which)."""


def parse_duration(
    value: str | float,
    *,
    name: str = "duration",
    lo: float = MIN_WINDOW_S,
    hi: float = MAX_WINDOW_S,
) -> float:
    """Parse ``30s``, ``5m``, ``1h``, ``24h``, ``1d`` or plain seconds (``90``, ``2.5``).

    Args:
        value: The text (or a number of seconds).
        name: Parameter name used in the error message.
        lo: Smallest accepted value, seconds.
        hi: Largest accepted value, seconds.

    Returns:
        The duration in seconds.

    Raises:
        InvalidDuration: If it is not a duration or lies outside ``[lo, hi]``.
    """
    if isinstance(value, bool):
        raise InvalidDuration(f"{name}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(value)
        if match is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise InvalidDuration(f"{name}: {shown!r} is not a duration (use e.g. 30s, 5m, 1h, 24h or seconds)")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds) or not lo <= seconds <= hi:
        raise InvalidDuration(f"{name} must be between {format_duration(lo)} and {format_duration(hi)}, "
                              f"got {format_duration(seconds) if math.isfinite(seconds) else seconds}")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact form: 300 -> ``5m``, 90 -> ``90s``, 86400 -> ``24h``."""
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_time(value: str | float, *, name: str = "time") -> float:
    """Parse a time point: Unix seconds (``1718000000``) or ISO-8601 (naive = UTC).

    Raises:
        InvalidDuration: If it is neither.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        ts = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise InvalidDuration(
                f"{name}: {shown!r} is neither Unix seconds nor ISO-8601 (e.g. 2024-06-01T12:00:00Z)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(ts) or ts < 0:
        raise InvalidDuration(f"{name}: {text!r} is not a valid Unix time")
    return ts


def effective_step(step_s: float | None, resolution: str) -> int:
    """Round a requested step up to a whole number of buckets of ``resolution`` (seconds)."""
    size = 60 if resolution == MINUTE else 1
    if step_s is None:
        return size
    return max(size, math.ceil(step_s / size) * size)


def resample(
    resolution: str, buckets: Sequence[tuple[int, BucketTotals]], step_s: int
) -> list[tuple[float, BucketTotals]]:
    """Merge consecutive buckets into ``step_s``-long ones aligned to the Unix epoch.

    Args:
        resolution: Resolution of ``buckets`` (``"s"`` or ``"m"``).
        buckets: ``(bucket index, totals)``, oldest first, without gaps.
        step_s: Output step in seconds, a multiple of the bucket size.

    Returns:
        ``(start time, merged totals)`` per step, oldest first. Steps at the edges of the
        range hold only the buckets inside it.
    """
    out: list[tuple[float, BucketTotals]] = []
    for bucket, totals in buckets:
        start = bucket_start(resolution, bucket)
        aligned = math.floor(start / step_s) * step_s
        if not out or out[-1][0] != aligned:
            out.append((float(aligned), BucketTotals()))
        out[-1][1].merge(totals)
    return out
