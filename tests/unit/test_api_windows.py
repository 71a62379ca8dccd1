"""Duration and time parsing shared by the API, alerts and CLI; resampling of buckets (pure functions)."""

from __future__ import annotations

import pytest

from pipeline.aggregate.buckets import MINUTE, SECOND, BucketTotals
from pipeline.aggregate.windows import (
    InvalidDuration,
    effective_step,
    format_duration,
    parse_duration,
    parse_time,
    resample,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("24h", 86400), ("1d", 86400), ("90", 90), ("12.5", 12.5),
    (" 2M ", 120), (45, 45), (60.0, 60),
])
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "needle"), [
    ("9s", "between 10s and 24h"), ("25h", "between"), ("5x", "not a duration"), ("", "not a duration"),
    ("-5m", "not a duration"), ("1h30m", "not a duration"), ("nan", "not a duration"), (True, "boolean"),
])
def test_parse_duration_rejects(text: str, needle: str) -> None:
    with pytest.raises(InvalidDuration, match=needle):
        parse_duration(text, name="window")


def test_bounds_and_format() -> None:
    assert parse_duration("0", lo=0, hi=10) == 0
    assert [format_duration(s) for s in (300, 90, 86400, 7200, 12.5)] == ["5m", "90s", "24h", "2h", "12.5s"]


def test_parse_time() -> None:
    assert parse_time("1700000000") == 1_700_000_000
    assert parse_time("2024-06-01T12:00:00Z") == parse_time("2024-06-01T12:00:00") == 1_717_243_200
    assert parse_time("2024-06-01T14:00:00+02:00") == 1_717_243_200
    with pytest.raises(InvalidDuration, match="ISO-8601"):
        parse_time("yesterday", name="start")
    with pytest.raises(InvalidDuration):
        parse_time("-5")


def test_resample_aligns_steps_to_the_epoch() -> None:
    buckets = [(b, BucketTotals(faces=1)) for b in range(95, 125)]  # seconds 95..124
    steps = resample(SECOND, buckets, 10)
    assert [ts for ts, _ in steps] == [90, 100, 110, 120]
    assert [t.faces for _, t in steps] == [5, 10, 10, 5]  # edge steps hold only in-range buckets
    assert effective_step(None, SECOND) == 1 and effective_step(None, MINUTE) == 60
    assert effective_step(10, MINUTE) == 60 and effective_step(90, MINUTE) == 120 and effective_step(2.5, SECOND) == 3
