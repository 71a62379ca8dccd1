"""The autoscaling timeline's plan, per-phase table and plot (no stack: rows are synthetic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bench.scaling_bench import ScalingOptions, build_plan, plot, summarize, write_csv
from tests.support.cli import run_cli


def _rows() -> list[dict]:
    rows = []
    for t in range(12):
        phase = "4 cams" if t < 6 else "face burst"
        rows.append({
            "t_s": float(t), "phase": phase, "cameras": 4 if t < 6 else 1, "burst_rate": 0.0 if t < 6 else 600.0,
            "frames_in_per_s": 120.0, "frames_sent_per_s": 20.0, "dropped_per_s": 0.0,
            "faces_published_per_s": 20.0, "faces_classified_per_s": 20.0, "faces_refused": 0,
            "queue_lag": 0 if t < 6 else 100 * t, "redis_cmds_per_s": 900, "redis_used_mb": 3.0,
            "latency_p50_s": 0.1, "latency_p95_s": None if t == 0 else 0.2 + t / 100, "latency_p99_s": 0.3,
            "replicas_FaceDetector": 1 if t < 3 else 2, "replicas_EmotionClassifier": 1 if t < 8 else 3,
        })
    return rows


def _default_options(monkeypatch: pytest.MonkeyPatch) -> ScalingOptions:
    """The options `emotionpipe bench scaling` passes on when given none (the run itself stubbed out)."""
    seen: list[ScalingOptions] = []

    def run_timeline(opts: ScalingOptions) -> int:
        seen.append(opts)
        return 0

    monkeypatch.setattr("pipeline.bench.scaling_bench.run_timeline", run_timeline)
    assert run_cli("bench", "scaling").code == 0
    return seen[0]


def test_plan_ramps_then_bursts_then_cools_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the default options
    plan = build_plan(_default_options(monkeypatch))
    # then cameras ramp to the peak, fall back to one, and the burst comes only after that
    cams = [p.cameras for p in plan]
    assert cams[:5] == [1, 2, 4, 6, 8] and cams[5] == 1
    burst = [i for i, p in enumerate(plan) if p.burst_rate > 0]
    assert len(burst) == 1 and plan[burst[0]].cameras == 1 and burst[0] == len(plan) - 2


def test_summary_table_reports_replica_spans_per_phase() -> None:
    table = summarize(_rows())
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two phases
    assert "| 4 cams | 4 |" in lines[2] and "1→2→2" in lines[2]
    assert "| face burst | 1 |" in lines[3] and "1→3→3" in lines[3] and "1100" in lines[3]


def test_csv_and_png_are_written(tmp_path: Path) -> None:
    rows = _rows()
    write_csv(tmp_path / "r.csv", rows)
    plot(tmp_path / "r.png", rows, "test")
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert "replicas_EmotionClassifier" in header and "latency_p99_s" in header
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
