"""Scheduled detection: full scans at an interval, regions around tracked faces, idle frames."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.detect.backends import FakeBackend
from pipeline.detect.detector import DetectionStage
from pipeline.detect.schedule import CameraSchedule, after_scan, detect_regions, plan_scan, region_around
from pipeline.detect.tracker import Track, TrackerState
from pipeline.detect.types import FrameMeta
from pipeline.settings import DetectSettings

W, H = 640, 480
SETTINGS = DetectSettings(full_scan_interval_s=1.0, region_scale=1.6, region_max_gap_s=0.6)


def tracked(*boxes: tuple[int, int, int, int], seen: float = 10.0, next_full: float = 11.0) -> TrackerState:
    return TrackerState(tracks=tuple(Track(i + 1, b, seen) for i, b in enumerate(boxes)), next_id=len(boxes) + 1,
                        last_full_scan_ts=10.0, next_full_scan_ts=next_full)


def test_a_fresh_camera_and_a_due_camera_scan_the_whole_frame() -> None:
    assert plan_scan(TrackerState(), 5.0, W, H, SETTINGS).full
    assert plan_scan(tracked((100, 100, 80, 80)), 11.0, W, H, SETTINGS).full
    # interval 0 = every frame in full (the old behaviour)
    every = DetectSettings(full_scan_interval_s=0.0)
    assert plan_scan(tracked((100, 100, 80, 80)), 10.2, W, H, every).full


def test_between_full_scans_only_regions_around_recent_tracks() -> None:
    state = tracked((100, 100, 80, 80), (400, 200, 60, 60))
    plan = plan_scan(state, 10.2, W, H, SETTINGS)
    assert not plan.full and plan.track_ids == (1, 2)
    for region, (x, y, w, h) in zip(plan.regions, [(100, 100, 80, 80), (400, 200, 60, 60)], strict=True):
        rx, ry, rw, rh = region
        # the face is inside its region, with room to move, and the region is on the 32 px grid
        assert rx <= x and ry <= y and rx + rw >= x + w and ry + rh >= y + h
        assert rx % 32 == 0 and ry % 32 == 0 and rw >= 1.6 * w
    # a track unseen for region_max_gap_s longer than the camera's latest face gets no region
    state = TrackerState(tracks=(Track(1, (100, 100, 80, 80), 10.0), Track(2, (400, 200, 60, 60), 10.7)),
                         next_id=3, last_full_scan_ts=10.0, next_full_scan_ts=11.0)
    assert plan_scan(state, 10.9, W, H, SETTINGS).track_ids == (2,)


def test_an_empty_scene_is_idle_until_the_next_full_scan() -> None:
    empty = TrackerState(last_full_scan_ts=10.0, next_full_scan_ts=10.9)
    assert plan_scan(empty, 10.5, W, H, SETTINGS).idle
    assert plan_scan(empty, 10.9, W, H, SETTINGS).full


def test_crowds_and_huge_faces_scan_the_whole_frame() -> None:
    crowd = tracked(*[(20 + 60 * i, 40, 30, 30) for i in range(9)])
    assert plan_scan(crowd, 10.2, W, H, SETTINGS).full
    # regions that cost more than half a full scan (searched at full resolution)
    native = SETTINGS.model_copy(update={"region_px": 1000})
    assert plan_scan(tracked((100, 0, 400, 470)), 10.2, W, H, native).full
    assert not plan_scan(tracked((100, 100, 120, 160)), 10.2, W, H, native).full


def test_regions_are_clipped_to_the_frame() -> None:
    assert region_around((600, 440, 40, 40), W, H, 1.6) == (544, 384, 96, 96)


def test_next_full_scan_is_jittered_within_the_interval_and_a_lost_face_rescans() -> None:
    rng = random.Random(1)
    full = plan_scan(TrackerState(), 20.0, W, H, SETTINGS)
    times = {after_scan(TrackerState(), full, [], 20.0, SETTINGS, rng).next_full_scan_ts for _ in range(50)}
    assert all(20.75 <= t <= 21.0 for t in times) and len(times) > 10
    state = tracked((100, 100, 80, 80), next_full=11.0)
    regions = plan_scan(state, 10.6, W, H, SETTINGS)
    # found: the schedule is unchanged; lost: a full scan right away (the last one was 0.6 s ago)
    assert after_scan(state, regions, [1], 10.6, SETTINGS).next_full_scan_ts == 11.0
    assert after_scan(state, regions, [], 10.6, SETTINGS).next_full_scan_ts == 10.6
    # a face already lost before (not in the latest result) does not bring it forward again
    older = TrackerState(tracks=(Track(1, (100, 100, 80, 80), 10.0), Track(2, (400, 200, 60, 60), 10.4)),
                         next_id=3, last_full_scan_ts=10.0, next_full_scan_ts=11.0)
    plan = plan_scan(older, 10.6, W, H, SETTINGS)
    assert plan.track_ids == (1, 2) and plan.fresh_ids == (2,)
    assert after_scan(older, plan, [2], 10.6, SETTINGS).next_full_scan_ts == 11.0
    # but not more often than every 0.4 s
    assert after_scan(state, plan_scan(state, 10.2, W, H, SETTINGS), [], 10.2, SETTINGS).next_full_scan_ts == 10.4


def test_faces_found_in_regions_come_back_in_frame_coordinates_once() -> None:
    frame = np.full((H, W, 3), 128, np.uint8)
    # The fake finds one face in the middle of whatever it is given: two overlapping regions
    # around the same spot find the same face twice, which counts once.
    found = detect_regions(FakeBackend(), frame, [(96, 96, 192, 192), (112, 112, 160, 160)], 384, 0.5)
    assert len(found) == 1
    x, y, w, h = found[0].bbox
    assert 96 <= x and x + w <= 288 and 96 <= y and y + h <= 288
    assert np.all(found[0].landmarks >= 96) and np.all(found[0].landmarks <= 288)
    # a region shrunk to region_px (here 4x) maps back to where the whole frame has the face
    big = detect_regions(FakeBackend(), frame, [(0, 0, 640, 480)], 160, 0.5)
    assert big[0].bbox == pytest.approx(FakeBackend().detect(frame)[0].bbox, abs=4)


def test_the_stage_follows_the_plan_and_schedules_the_next_full_scan() -> None:
    stage = DetectionStage(SETTINGS, backend=FakeBackend(), refine_tilt_deg=None)
    frame = np.full((H, W, 3), 128, np.uint8)
    first = stage.process(frame, FrameMeta("c", 1, 100.0), None, None)
    assert first.scan == "full" and first.n_faces == 1
    assert 100.75 <= first.tracks.next_full_scan_ts <= 101.0
    second = stage.process(frame, FrameMeta("c", 2, 100.2), first.tracks, None)
    # the same face (the fake's box follows the region's size, the track continues)
    assert second.scan == "regions" and second.track_ids == first.track_ids
    empty = stage.process(frame, FrameMeta("c", 3, 101.5), TrackerState(next_full_scan_ts=102.0), None)
    assert empty.scan == "idle" and empty.n_faces == 0


def test_the_reader_keeps_one_full_scan_in_flight_and_skips_idle_frames() -> None:
    schedule = CameraSchedule(SETTINGS, fps=5.0)
    due = TrackerState(tracks=(Track(1, (100, 100, 80, 80), 9.8),), next_id=2, last_full_scan_ts=9.0,
                       next_full_scan_ts=10.0)
    # a full scan is due: the frame goes as is
    assert schedule.prepare(due, 10.0, W, H) is due
    # its result has not come back: later frames go with the full scan marked done (regions only)
    sent = schedule.prepare(due, 10.2, W, H)
    assert sent is not None and not plan_scan(sent, 10.2, W, H, SETTINGS).full
    # once the result is in (it set last_full_scan_ts), the replica's schedule rules again,
    # an early rescan for a lost face included
    back = TrackerState(tracks=due.tracks, next_id=2, last_full_scan_ts=10.0, next_full_scan_ts=10.9)
    assert schedule.prepare(back, 10.4, W, H) is back
    rescan = TrackerState(tracks=due.tracks, next_id=2, last_full_scan_ts=10.0, next_full_scan_ts=10.4)
    fresh = CameraSchedule(SETTINGS, fps=5.0)
    assert [fresh.prepare(back, t, W, H) is back for t in (10.0, 10.2)] == [True, True]
    assert plan_scan(fresh.prepare(rescan, 10.4, W, H), 10.4, W, H, SETTINGS).full
    # a lost result does not block full scans for more than an interval
    for ts in (10.6, 10.8):
        assert not plan_scan(schedule.prepare(due, ts, W, H), ts, W, H, SETTINGS).full
    assert plan_scan(schedule.prepare(due, 11.0, W, H), 11.0, W, H, SETTINGS).full
    # an empty scene between full scans: not sent at all
    assert schedule.prepare(TrackerState(last_full_scan_ts=11.0, next_full_scan_ts=11.9), 11.5, W, H) is None


def test_regions_follow_the_latest_results_when_detection_lags() -> None:
    # Results 1.5 s behind the frame being planned (an overloaded detector): the face seen in
    # the latest result still gets its region, instead of the frame going idle.
    lagging = tracked((100, 100, 80, 80), seen=10.0, next_full=13.0)
    assert plan_scan(lagging, 11.5, W, H, SETTINGS).track_ids == (1,)
    # but not once the tracker would have closed the track
    assert plan_scan(lagging, 11.5, W, H, SETTINGS.model_copy(update={"track_max_age_s": 1.0})).idle


def test_full_scans_stretch_apart_when_frames_are_dropped() -> None:
    # Every frame reaches the schedule (5 fps): full scans at the configured interval.
    schedule = CameraSchedule(SETTINGS, fps=5.0)
    state = TrackerState(tracks=(Track(1, (100, 100, 80, 80), 9.8),), next_id=2, last_full_scan_ts=9.0,
                         next_full_scan_ts=10.0)
    for i in range(10):
        schedule.prepare(state, 8.0 + 0.2 * i, W, H)
    assert schedule.stretch == 1.0
    assert plan_scan(schedule.prepare(state, 10.0, W, H), 10.0, W, H, SETTINGS).full
    # Only one frame in three gets through (the others dropped, over capacity): full scans come
    # about three times rarer, so the replica is told the last one is recent enough.
    over = CameraSchedule(SETTINGS, fps=5.0)
    for i in range(12):
        over.prepare(None, 12.0 - 0.6 * (12 - i), W, H)
    assert 2.5 < over.stretch <= 3.0
    recent = TrackerState(tracks=(Track(1, (100, 100, 80, 80), 11.8),), next_id=2, last_full_scan_ts=10.5,
                          next_full_scan_ts=11.4)
    # (the replica scheduled the next full scan 0.9 s after the last: now about 3 x 0.9 s after it)
    for ts in (12.0, 12.6):
        sent = over.prepare(recent, ts, W, H)
        assert sent is not None and not plan_scan(sent, ts, W, H, SETTINGS).full
    assert plan_scan(over.prepare(recent, 13.2, W, H), 13.2, W, H, SETTINGS).full
