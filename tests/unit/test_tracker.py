"""Per-camera IoU tracker: a pure function of (state, boxes, ts)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detect.tracker import Track, TrackerState, iou_matrix, step


def test_iou_matrix_known_values() -> None:
    # given: identical, disjoint, half-overlapping and zero-area boxes
    a = [(0, 0, 10, 10)]
    b = [(0, 0, 10, 10), (20, 20, 5, 5), (5, 0, 10, 10), (3, 3, 0, 0)]
    # when
    m = iou_matrix(a, b)
    # then: half overlap = 50 / 150; zero area gives 0, not NaN
    assert m.shape == (1, 4)
    assert m[0].tolist() == pytest.approx([1.0, 0.0, 1 / 3, 0.0])
    assert iou_matrix([], b).shape == (0, 4)


def test_first_frame_assigns_fresh_ids() -> None:
    state, ids = step(TrackerState(), [(0, 0, 10, 10), (50, 50, 10, 10)], ts=1.0)
    assert ids == [1, 2]
    assert state.next_id == 3
    assert [t.id for t in state.tracks] == [1, 2]


def test_moving_box_keeps_its_id_and_newcomer_gets_a_new_one() -> None:
    # given: two tracks
    state, _ = step(TrackerState(), [(0, 0, 20, 20), (100, 0, 20, 20)], ts=0.0)
    # when: both move a little (order swapped) and a third face appears
    state, ids = step(state, [(102, 1, 20, 20), (200, 200, 20, 20), (2, 2, 20, 20)], ts=0.2)
    # then
    assert ids == [2, 3, 1]
    assert {t.id: t.bbox for t in state.tracks}[1] == (2, 2, 20, 20)


def test_unmatched_track_survives_until_max_age_then_id_is_not_reused() -> None:
    state, _ = step(TrackerState(), [(0, 0, 20, 20)], ts=0.0)
    # a frame without faces keeps the track alive
    state, ids = step(state, [], ts=1.0, max_age_s=2.0)
    assert ids == [] and [t.id for t in state.tracks] == [1]
    # seen again within max_age (measured from last sighting at t=0)
    state, ids = step(state, [(1, 1, 20, 20)], ts=1.9, max_age_s=2.0)
    assert ids == [1]
    # gone longer than max_age: same place, new person, new id
    state, ids = step(state, [(1, 1, 20, 20)], ts=4.0, max_age_s=2.0)
    assert ids == [2]
    assert [t.id for t in state.tracks] == [2]


def test_greedy_matching_prefers_the_best_overlap() -> None:
    # given: track 1 at x=0, track 2 at x=12 (both overlap the new box)
    state, _ = step(TrackerState(), [(0, 0, 20, 20), (12, 0, 20, 20)], ts=0.0)
    # when: one box close to track 2
    state, ids = step(state, [(11, 0, 20, 20)], ts=0.1)
    # then: track 2 wins, track 1 stays alive but unmatched
    assert ids == [2]
    assert {t.id for t in state.tracks} == {1, 2}


def test_low_iou_starts_a_new_track() -> None:
    state, _ = step(TrackerState(), [(0, 0, 20, 20)], ts=0.0)
    _, ids = step(state, [(15, 15, 20, 20)], ts=0.1, iou_threshold=0.3)
    assert ids == [2]


def test_step_is_pure() -> None:
    state, _ = step(TrackerState(), [(0, 0, 20, 20)], ts=0.0)
    before = dataclasses.replace(state)
    out1 = step(state, [(1, 1, 20, 20)], ts=0.1)
    out2 = step(state, [(1, 1, 20, 20)], ts=0.1)
    assert state == before
    assert out1 == out2
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.next_id = 9  # type: ignore[misc]
    assert isinstance(state.tracks[0], Track)


boxes_st = st.lists(
    st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(1, 80), st.integers(1, 80)), max_size=12
)


@given(frames=st.lists(boxes_st, min_size=1, max_size=6))
def test_ids_unique_per_frame_and_below_next_id(frames: list[list[tuple[int, int, int, int]]]) -> None:
    state = TrackerState()
    for k, boxes in enumerate(frames):
        state, ids = step(state, boxes, ts=k * 0.2)
        assert len(ids) == len(boxes)
        assert len(set(ids)) == len(ids)
        assert all(0 < i < state.next_id for i in ids)
        assert len({t.id for t in state.tracks}) == len(state.tracks)
