"""The capacity report: over capacity when cameras drop frames, and what would be sustainable."""

from __future__ import annotations

from pipeline.ingest.capacity import capacity_report


def live(target: float, out: float, dropped: float, state: str = "live") -> dict[str, object]:
    return {"state": state, "fps_target": target, "fps_out": out, "fps_dropped": dropped}


def test_keeping_up() -> None:
    report = capacity_report([live(5, 5.0, 0.0), live(5, 4.9, 0.1), live(5, 0, 0, state="reconnecting")])
    assert report.cameras == 2 and report.demand_fps == 10 and not report.over_capacity
    assert report.sustainable_cameras is None


def test_over_capacity_reports_the_sustainable_camera_count() -> None:
    # 32 cameras at 5 fps, 90 frames/s processed, the rest dropped
    report = capacity_report([live(5, 90 / 32, 5 - 90 / 32)] * 32)
    assert report.over_capacity and report.dropped_fps == 70 and report.sustainable_cameras == 18
    # garbage in a health hash counts as 0, not as an error
    assert capacity_report([{"state": "live", "fps_target": "x", "fps_out": None}]).demand_fps == 0
