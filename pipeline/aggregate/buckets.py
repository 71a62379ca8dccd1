"""Time-bucket math for per-camera aggregates.

Results are bucketed by *capture* time (``EmotionResult.ts``), so a result that
arrives late (reclaimed after a consumer died) still lands in the right bucket.
Two resolutions exist: per second (short TTL, for windows up to
:data:`SECOND_WINDOW_MAX_S`) and per minute (long TTL, for longer windows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pipeline.contracts import LABELS, EmotionResult

#: Bucket resolutions; they appear in key names (see pipeline.store.keys).
SECOND = "s"
MINUTE = "m"

#: Windows up to this many seconds are answered from per-second buckets.
SECOND_WINDOW_MAX_S = 600
#: Longest window a summary may ask for (a day, the span the design promises).
MAX_WINDOW_S = 86400

FACES_FIELD = "faces"
COUNT_FIELDS = tuple(f"n:{label}" for label in LABELS)
PROB_FIELDS = tuple(f"p:{label}" for label in LABELS)


def second_bucket(ts: float) -> int:
    """Index of the per-second bucket holding ``ts``."""
    return math.floor(ts)


def minute_bucket(ts: float) -> int:
    """Index of the per-minute bucket holding ``ts``."""
    return math.floor(ts / 60.0)


def bucket_start(resolution: str, bucket: int) -> float:
    """Unix time at which a bucket begins."""
    return float(bucket * (60 if resolution == MINUTE else 1))


def window_buckets(window_s: float, now: float) -> tuple[str, list[int]]:
    """Buckets that cover the window ``(now - window_s, now]``.

    Args:
        window_s: Window length in seconds, 1 … :data:`MAX_WINDOW_S`.
        now: End of the window, Unix seconds.

    Returns:
        The resolution (``"s"`` or ``"m"``) and the bucket indices, oldest first. The
        newest bucket is the one containing ``now``; minute windows are rounded up to
        whole minutes.

    Raises:
        ValueError: If the window is out of range.
    """
    if not 1 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window_s must be within 1..{MAX_WINDOW_S}, got {window_s}")
    if window_s <= SECOND_WINDOW_MAX_S:
        end, n, resolution = second_bucket(now), math.ceil(window_s), SECOND
    else:
        end, n, resolution = minute_bucket(now), math.ceil(window_s / 60.0), MINUTE
    return resolution, list(range(end - n + 1, end + 1))


def covering_buckets(window_s: float, now: float) -> list[tuple[str, int]]:
    """The fewest buckets whose union is exactly the window's per-second buckets.

    For a summary (totals, not a series) the whole minutes inside a per-second window can be
    read from per-minute buckets, which hold the same faces: a 5-minute window is then ~4
    minute buckets plus up to 2 x 59 edge seconds instead of 300 reads. Windows answered
    from minute buckets anyway are returned as they are.

    Returns:
        ``(resolution, bucket)`` pairs, oldest first.
    """
    resolution, buckets = window_buckets(window_s, now)
    if resolution == MINUTE:
        return [(MINUTE, b) for b in buckets]
    first_s, last_s = buckets[0], buckets[-1]
    first_m = -(-first_s // 60)  # first minute that starts inside the window
    last_m = (last_s + 1) // 60 - 1  # last minute that ends inside it
    if first_m > last_m:
        return [(SECOND, b) for b in buckets]
    return (
        [(SECOND, b) for b in range(first_s, first_m * 60)]
        + [(MINUTE, m) for m in range(first_m, last_m + 1)]
        + [(SECOND, b) for b in range((last_m + 1) * 60, last_s + 1)]
    )


@dataclass(slots=True)
class BucketTotals:
    """Sums over the faces of one bucket (or of several buckets, merged)."""

    faces: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * len(LABELS))
    prob_sums: list[float] = field(default_factory=lambda: [0.0] * len(LABELS))
    tracks: set[int] = field(default_factory=set)

    def add_result(self, result: EmotionResult) -> None:
        """Count one classified face."""
        self.faces += 1
        self.counts[LABELS.index(result.label)] += 1
        for i, p in enumerate(result.probs):
            self.prob_sums[i] += p
        if result.track_id is not None:
            self.tracks.add(result.track_id)

    def merge(self, other: BucketTotals) -> None:
        """Add another bucket's totals to this one."""
        self.faces += other.faces
        for i in range(len(LABELS)):
            self.counts[i] += other.counts[i]
            self.prob_sums[i] += other.prob_sums[i]
        self.tracks |= other.tracks

    def increments(self) -> tuple[dict[str, int], dict[str, float]]:
        """Integer and float hash increments that add these totals to a stored bucket."""
        ints = {FACES_FIELD: self.faces}
        ints.update({f: c for f, c in zip(COUNT_FIELDS, self.counts) if c})
        floats = dict(zip(PROB_FIELDS, self.prob_sums))
        return ints, floats

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes], tracks: Iterable[bytes] = ()) -> BucketTotals:
        """Parse a stored bucket hash (and its track set)."""
        decoded = {k.decode(): v for k, v in raw.items()}
        return cls(
            faces=int(decoded.get(FACES_FIELD, 0)),
            counts=[int(decoded.get(f, 0)) for f in COUNT_FIELDS],
            prob_sums=[float(decoded.get(f, 0.0)) for f in PROB_FIELDS],
            tracks={int(t) for t in tracks},
        )


def accumulate(results: Iterable[EmotionResult]) -> dict[tuple[str, str, int], BucketTotals]:
    """Group results into per-(camera, resolution, bucket) totals.

    Summing in Python first keeps the Redis transaction at a handful of commands
    per bucket instead of ~20 per face.
    """
    out: dict[tuple[str, str, int], BucketTotals] = {}
    for result in results:
        for resolution, bucket in (
            (SECOND, second_bucket(result.ts)),
            (MINUTE, minute_bucket(result.ts)),
        ):
            key = (result.camera_id, resolution, bucket)
            totals = out.get(key)
            if totals is None:
                totals = out[key] = BucketTotals()
            totals.add_result(result)
    return out
