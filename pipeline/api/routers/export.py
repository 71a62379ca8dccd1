"""``/cameras/{id}/export``: per-step counts and mean probabilities over a time range, as CSV or JSON.

Ranges are bounded so one request cannot make the API read unbounded history: at most
:data:`MAX_EXPORT_RANGE_S` with per-minute steps, :data:`MAX_SECOND_RANGE_S` with steps
that are not whole minutes (per-second buckets live ``second_ttl_s``, an hour by default).
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from pipeline.aggregate.buckets import BucketTotals
from pipeline.aggregate.windows import InvalidDuration, format_duration, parse_duration, parse_time
from pipeline.api.deps import StoreDep
from pipeline.api.schemas import ExportFormat
from pipeline.contracts import LABELS

router = APIRouter(prefix="/cameras", tags=["export"])

MAX_EXPORT_RANGE_S = 7 * 86400
MAX_SECOND_RANGE_S = 3600
DEFAULT_RANGE_S = 3600

#: CSV columns: bucket start, faces, the 7 top-1 counts, the 7 mean probabilities.
CSV_HEADER = ("ts", "faces", *LABELS, *(f"p_{label}" for label in LABELS))

TimeQuery = Annotated[str | None, Query(description="Unix seconds or ISO-8601 (naive = UTC).")]


def _row(ts: float, totals: BucketTotals) -> dict[str, Any]:
    faces = totals.faces
    return {
        "ts": ts,
        "faces": faces,
        "counts": dict(zip(LABELS, totals.counts)),
        "mean_probs": {label: (s / faces if faces else 0.0) for label, s in zip(LABELS, totals.prob_sums)},
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([
            f"{r['ts']:.0f}", r["faces"],
            *(r["counts"][label] for label in LABELS),
            *(f"{r['mean_probs'][label]:.6f}" for label in LABELS),
        ])
    return buf.getvalue()


def resolve_range(start: str | None, end: str | None, step: str | None, now: float) -> tuple[float, float, int]:
    """Validate ``start``/``end``/``step``; defaults: the last hour, 1 s steps up to 10 min, else 1 min.

    Raises:
        InvalidDuration: With a message naming the offending parameter.
    """
    end_ts = parse_time(end, name="end") if end else now
    start_ts = parse_time(start, name="start") if start else end_ts - DEFAULT_RANGE_S
    span = end_ts - start_ts
    if span <= 0:
        raise InvalidDuration("end must be after start")
    if span > MAX_EXPORT_RANGE_S:
        raise InvalidDuration(f"range too large: {format_duration(span)} > {format_duration(MAX_EXPORT_RANGE_S)}")
    if step:
        step_f = parse_duration(step, name="step", lo=1, hi=86400)
        if step_f != int(step_f):
            raise InvalidDuration("step must be a whole number of seconds")
        step_s = int(step_f)
    else:
        step_s = 1 if span <= 600 else 60
    if step_s % 60 and span > MAX_SECOND_RANGE_S:
        raise InvalidDuration(
            f"steps that are not whole minutes read per-second buckets: range at most "
            f"{format_duration(MAX_SECOND_RANGE_S)} (got {format_duration(span)}); use a step like 1m"
        )
    return start_ts, end_ts, step_s


@router.get(
    "/{camera_id}/export",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    response_class=Response,
)
def export_camera(
    camera_id: str,
    store: StoreDep,
    start: TimeQuery = None,
    end: TimeQuery = None,
    format: Annotated[ExportFormat, Query(description="csv or json")] = "csv",
    step: Annotated[str | None, Query(description="Step: 1s … 24h (default 1s up to 10 min ranges, else 1m).")] = None,
) -> Response:
    """Download per-step aggregates of one camera in ``[start, end)`` as an attachment."""
    start_ts, end_ts, step_s = resolve_range(start, end, step, time.time())
    store.get_camera(camera_id)
    rows = [_row(ts, t) for ts, t in store.range_totals(camera_id, start_ts, end_ts, step_s)]
    name = f"{camera_id}_{int(start_ts)}_{int(end_ts)}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    body = {"camera_id": camera_id, "start": start_ts, "end": end_ts, "step_s": step_s, "labels": list(LABELS),
            "rows": rows}
    return Response(json.dumps(body), media_type="application/json", headers=headers)
