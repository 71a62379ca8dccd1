"""Window summaries and time series computed from bucket totals and track states."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from pipeline.aggregate.buckets import BucketTotals, bucket_start
from pipeline.aggregate.ema import TrackEma
from pipeline.contracts import LABELS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackSummary(_Model):
    """Smoothed emotion of one person (track) seen in the window."""

    camera_id: str = Field(description="Camera the track belongs to (track ids are per camera).")
    track_id: int
    dominant: str = Field(description="Label with the highest smoothed probability.")
    smoothed_probs: dict[str, float] = Field(description="EMA of the track's probabilities, by label.")
    last_seen: float = Field(description="Capture time of the newest face of the track.")


class Summary(_Model):
    """Emotion distribution of one camera (or a group) over a time window."""

    camera_id: str
    window_s: float = Field(description="Window length in seconds, ending at `until`.")
    until: float = Field(description="End of the window, Unix seconds.")
    faces: int = Field(description="Faces classified in the window.")
    distinct_tracks: int = Field(description="Distinct tracks (people) seen in the window.")
    counts: dict[str, int] = Field(description="Faces per top-1 label.")
    shares: dict[str, float] = Field(description="counts / faces (all 0 when no faces).")
    mean_probs: dict[str, float] = Field(description="Mean probability per label over the faces.")
    dominant: str | None = Field(description="Most frequent top-1 label; null when no faces.")
    tracks: list[TrackSummary] = Field(description="Tracks seen in the window, most recent first.")
    model: str | None = Field(description="Model (name@version) of the newest result, if any.")


class SeriesPoint(_Model):
    """One bucket of a time series."""

    ts: float = Field(description="Bucket start, Unix seconds.")
    faces: int
    counts: dict[str, int]
    dominant: str | None


def _dominant(counts: Sequence[int], prob_sums: Sequence[float]) -> str | None:
    if sum(counts) == 0:
        return None
    # Ties in counts are broken by the mean probability, then by label order.
    best = max(range(len(LABELS)), key=lambda i: (counts[i], prob_sums[i], -i))
    return LABELS[best]


def track_summary(camera_id: str, track_id: int, state: TrackEma) -> TrackSummary:
    """Present one track's EMA state."""
    return TrackSummary(
        camera_id=camera_id,
        track_id=track_id,
        dominant=state.dominant,
        smoothed_probs=dict(zip(LABELS, state.probs)),
        last_seen=state.last_seen,
    )


def build_summary(
    camera_id: str,
    window_s: float,
    until: float,
    totals: BucketTotals,
    tracks: Sequence[TrackSummary],
    model: str | None,
    distinct_tracks: int | None = None,
) -> Summary:
    """Turn merged bucket totals into a :class:`Summary`.

    Args:
        camera_id: Camera (or group) the totals belong to.
        window_s: Window length in seconds.
        until: End of the window.
        totals: Sum of the window's buckets.
        tracks: Tracks seen in the window (their current smoothed state).
        model: Model of the newest result.
        distinct_tracks: Distinct track count when known independently of ``tracks``
            (a track whose state expired still counts); default ``len(tracks)``.
    """
    faces = totals.faces
    counts = dict(zip(LABELS, totals.counts))
    shares = {label: (c / faces if faces else 0.0) for label, c in counts.items()}
    mean_probs = {label: (s / faces if faces else 0.0) for label, s in zip(LABELS, totals.prob_sums)}
    ordered = sorted(tracks, key=lambda t: (-t.last_seen, t.camera_id, t.track_id))
    return Summary(
        camera_id=camera_id,
        window_s=window_s,
        until=until,
        faces=faces,
        distinct_tracks=(
            distinct_tracks
            if distinct_tracks is not None
            else len({(t.camera_id, t.track_id) for t in tracks})
        ),
        counts=counts,
        shares=shares,
        mean_probs=mean_probs,
        dominant=_dominant(totals.counts, totals.prob_sums),
        tracks=ordered,
        model=model,
    )


def build_series(resolution: str, buckets: Sequence[tuple[int, BucketTotals]]) -> list[SeriesPoint]:
    """One point per bucket, oldest first (empty buckets included, so charts keep their x axis)."""
    return [
        SeriesPoint(
            ts=bucket_start(resolution, bucket),
            faces=totals.faces,
            counts=dict(zip(LABELS, totals.counts)),
            dominant=_dominant(totals.counts, totals.prob_sums),
        )
        for bucket, totals in buckets
    ]


def merge_summaries(group_id: str, summaries: Sequence[Summary]) -> Summary:
    """Combine per-camera summaries of the same window into one group summary.

    Mean probabilities are weighted by each camera's face count; tracks keep their
    camera id, so equal track ids of different cameras stay distinct.
    """
    if not summaries:
        raise ValueError("merge_summaries needs at least one summary")
    totals = BucketTotals()
    for s in summaries:
        totals.faces += s.faces
        for i, label in enumerate(LABELS):
            totals.counts[i] += s.counts[label]
            totals.prob_sums[i] += s.mean_probs[label] * s.faces
    models = [s.model for s in summaries if s.model]
    return build_summary(
        camera_id=group_id,
        window_s=summaries[0].window_s,
        until=max(s.until for s in summaries),
        totals=totals,
        tracks=[t for s in summaries for t in s.tracks],
        model=models[0] if models else None,
        distinct_tracks=sum(s.distinct_tracks for s in summaries),
    )


def series_point(ts: float, totals: BucketTotals) -> SeriesPoint:
    """One point of a (resampled) series starting at ``ts``."""
    return SeriesPoint(
        ts=ts,
        faces=totals.faces,
        counts=dict(zip(LABELS, totals.counts)),
        dominant=_dominant(totals.counts, totals.prob_sums),
    )


def dominant_label(totals: BucketTotals) -> str | None:
    """The most frequent top-1 label of some totals (ties: higher mean probability, then label order)."""
    return _dominant(totals.counts, totals.prob_sums)
