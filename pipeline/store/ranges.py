"""Bucket reads over explicit ranges: resampled time series, exports, recent face rates."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from pipeline.aggregate.buckets import (
    FACES_FIELD,
    MINUTE,
    SECOND,
    BucketTotals,
    minute_bucket,
    second_bucket,
    window_buckets,
)
from pipeline.aggregate.windows import effective_step, resample
from pipeline.store.base import StoreBase

#: Most buckets one range read may touch (a week of minutes); callers bound their ranges below it.
MAX_RANGE_BUCKETS = 7 * 1440


class RangeOps(StoreBase):
    """Read many buckets in one round trip."""

    def _read_buckets(self, camera_id: str, resolution: str, buckets: Sequence[int]) -> list[tuple[int, BucketTotals]]:
        if len(buckets) > MAX_RANGE_BUCKETS:
            raise ValueError(f"{len(buckets)} buckets requested, at most {MAX_RANGE_BUCKETS}")
        pipe = self.client.pipeline(transaction=False)
        for b in buckets:
            pipe.hgetall(self.keys.bucket(camera_id, resolution, b))
        return [(b, BucketTotals.from_hash(h)) for b, h in zip(buckets, pipe.execute())]

    def timeseries(
        self, camera_id: str, window_s: float, step_s: float | None = None, now: float | None = None
    ) -> tuple[int, list[tuple[float, BucketTotals]]]:
        """Totals per step over the window ending at ``now``.

        Per-second buckets serve windows up to 600 s, per-minute buckets longer ones;
        the step is rounded up to whole buckets.

        Returns:
            The effective step in seconds and ``(step start, totals)`` pairs, oldest first.
        """
        now = time.time() if now is None else now
        resolution, buckets = window_buckets(window_s, now)
        step = effective_step(step_s, resolution)
        return step, resample(resolution, self._read_buckets(camera_id, resolution, buckets), step)

    def range_totals(
        self, camera_id: str, start: float, end: float, step_s: int
    ) -> list[tuple[float, BucketTotals]]:
        """Totals per step for the buckets starting in ``[start, end)``.

        Args:
            camera_id: Camera id.
            start: Range start, Unix seconds.
            end: Range end (exclusive), Unix seconds.
            step_s: Output step; a multiple of 60 reads per-minute buckets, anything else
                per-second ones (which live only ``second_ttl_s``).

        Raises:
            ValueError: If the range needs more than :data:`MAX_RANGE_BUCKETS` buckets.
        """
        if step_s % 60 == 0:
            resolution, first, last = MINUTE, minute_bucket(start), math.ceil(end / 60.0) - 1
        else:
            resolution, first, last = SECOND, second_bucket(start), math.ceil(end) - 1
        buckets = list(range(first, last + 1))
        return resample(resolution, self._read_buckets(camera_id, resolution, buckets), step_s)

    def faces_rates(self, camera_ids: Sequence[str], seconds: int = 60, now: float | None = None) -> dict[str, float]:
        """Faces classified per second over the last ``seconds`` complete seconds, per camera."""
        now = time.time() if now is None else now
        end = second_bucket(now) - 1  # the current second is still filling
        buckets = range(end - seconds + 1, end + 1)
        pipe = self.client.pipeline(transaction=False)
        for camera_id in camera_ids:
            for b in buckets:
                pipe.hget(self.keys.bucket(camera_id, SECOND, b), FACES_FIELD)
        raw = pipe.execute()
        out = {}
        for i, camera_id in enumerate(camera_ids):
            chunk = raw[i * seconds : (i + 1) * seconds]
            out[camera_id] = sum(int(v) for v in chunk if v is not None) / seconds
        return out
