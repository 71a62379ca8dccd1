"""Bucket math, per-track EMA and window summaries (pure functions and through a real Redis)."""

from __future__ import annotations

import threading

import pytest

from pipeline.aggregate.buckets import (
    MINUTE,
    SECOND,
    BucketTotals,
    accumulate,
    covering_buckets,
    minute_bucket,
    second_bucket,
    window_buckets,
)
from pipeline.aggregate.ema import TrackEma, ema_update
from pipeline.aggregate.summary import merge_summaries
from pipeline.contracts import LABELS, EmotionResult
from pipeline.store.models import StoreOptions
from pipeline.store.redis_store import RedisStore

HAPPY, SAD, NEUTRAL = LABELS.index("happy"), LABELS.index("sad"), LABELS.index("neutral")
NOW = 1_800_000_030.5  # 30.5 s into a minute


def probs_for(idx: int, top: float = 0.7) -> tuple[float, ...]:
    rest = (1.0 - top) / 6
    return tuple(top if i == idx else rest for i in range(7))


def result(ts: float, idx: int, camera_id: str = "cam1", track_id: int | None = None) -> EmotionResult:
    return EmotionResult(
        camera_id=camera_id, frame_id=0, ts=ts, face_idx=0, bbox=(0, 0, 1, 1), probs=probs_for(idx),
        model="fake@1", track_id=track_id,
    )


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix="a:", options=StoreOptions(track_ema=0.5))
    s.ensure_group()
    yield s
    s.close()


def record(store: RedisStore, results: list[EmotionResult]) -> int:
    """Publish-free recording: message ids minted by XADD so idempotency keys are real."""
    ids = [store.client.xadd(store.keys.faces, {b"d": b"x"}) for _ in results]
    return store.record_results(results, ids)


# --------------------------------------------------------------------------- pure
def test_bucket_indices() -> None:
    assert second_bucket(NOW) == 1_800_000_030
    assert minute_bucket(NOW) == 30_000_000
    assert second_bucket(-0.5) == -1


def test_window_buckets_short_windows_use_seconds() -> None:
    res, buckets = window_buckets(10, NOW)
    assert res == SECOND
    assert buckets == list(range(1_800_000_021, 1_800_000_031))
    res, buckets = window_buckets(600, NOW)
    assert res == SECOND and len(buckets) == 600


def test_window_buckets_long_windows_use_minutes() -> None:
    res, buckets = window_buckets(3600, NOW)
    assert res == MINUTE
    assert buckets == list(range(30_000_000 - 59, 30_000_001))
    assert window_buckets(601, NOW)[1][-1] == minute_bucket(NOW)
    assert len(window_buckets(86400, NOW)[1]) == 1440


@pytest.mark.parametrize("window", [0, -5, 86401])
def test_window_out_of_range(window: float) -> None:
    with pytest.raises(ValueError):
        window_buckets(window, NOW)


def test_accumulate_groups_by_camera_resolution_and_bucket() -> None:
    totals = accumulate(
        [
            result(100.2, HAPPY, track_id=1),
            result(100.9, SAD, track_id=2),
            result(101.0, HAPPY, track_id=1),
            result(100.5, HAPPY, camera_id="cam2"),
        ]
    )
    assert set(totals) == {
        ("cam1", SECOND, 100), ("cam1", SECOND, 101), ("cam1", MINUTE, 1),
        ("cam2", SECOND, 100), ("cam2", MINUTE, 1),
    }
    sec = totals[("cam1", SECOND, 100)]
    assert sec.faces == 2 and sec.counts[HAPPY] == 1 and sec.counts[SAD] == 1 and sec.tracks == {1, 2}
    assert sec.prob_sums[HAPPY] == pytest.approx(0.7 + 0.05)
    assert totals[("cam1", MINUTE, 1)].faces == 3


def test_bucket_totals_hash_round_trip() -> None:
    t = accumulate([result(5.0, SAD, track_id=3)])[("cam1", SECOND, 5)]
    ints, floats = t.increments()
    raw = {k.encode(): str(v).encode() for k, v in {**ints, **floats}.items()}
    back = BucketTotals.from_hash(raw, [b"3"])
    assert back.faces == 1 and back.counts == t.counts and back.tracks == {3}
    assert back.prob_sums == pytest.approx(t.prob_sums)


def test_ema_update() -> None:
    # given a new track, the first observation is the state
    s1 = ema_update(None, probs_for(SAD), ts=10.0, alpha=0.4)
    assert s1.probs == pytest.approx(probs_for(SAD)) and s1.observations == 1 and s1.dominant == "sad"
    # when a happy face follows, the state moves 40 % of the way
    s2 = ema_update(s1, probs_for(HAPPY), ts=11.0, alpha=0.4)
    expected = [0.4 * h + 0.6 * s for h, s in zip(probs_for(HAPPY), probs_for(SAD))]
    assert s2.probs == pytest.approx(expected)
    assert s2.dominant == "sad"  # one frame does not flip a smoothed track
    assert s2.last_seen == 11.0 and s2.observations == 2
    # a late observation never moves last_seen backwards
    assert ema_update(s2, probs_for(HAPPY), ts=5.0, alpha=0.4).last_seen == 11.0
    with pytest.raises(ValueError):
        ema_update(None, (1.0,), ts=0.0, alpha=0.4)


def test_track_state_hash_round_trip_and_garbage() -> None:
    s = TrackEma(probs=probs_for(HAPPY), last_seen=12.25, observations=4)
    raw = {k.encode(): v.encode() for k, v in s.to_hash().items()}
    back = TrackEma.from_hash(raw)
    assert back is not None and back.probs == pytest.approx(s.probs) and back.last_seen == 12.25
    assert TrackEma.from_hash({}) is None
    assert TrackEma.from_hash({b"probs": b"[1, 2]", b"last_seen": b"1", b"n": b"1"}) is None
    assert TrackEma.from_hash({b"probs": b"not json"}) is None


# --------------------------------------------------------------------------- through Redis
def test_empty_summary(store: RedisStore) -> None:
    s = store.summary("cam1", 60, now=NOW)
    assert s.faces == 0 and s.dominant is None and s.model is None and s.tracks == []
    assert s.distinct_tracks == 0
    assert set(s.shares.values()) == {0.0} and list(s.counts) == list(LABELS)


def test_windows_pick_the_right_buckets(store: RedisStore) -> None:
    # given faces 5 s, 30 s and 700 s before now, and one in the future bucket
    record(store, [result(NOW - 5, HAPPY), result(NOW - 30, SAD), result(NOW - 700, NEUTRAL), result(NOW + 2, SAD)])
    # then each window sees exactly the faces inside it
    s10 = store.summary("cam1", 10, now=NOW)
    assert s10.faces == 1 and s10.dominant == "happy" and s10.counts["happy"] == 1
    s60 = store.summary("cam1", 60, now=NOW)
    assert s60.faces == 2 and s60.counts == {**dict.fromkeys(LABELS, 0), "happy": 1, "sad": 1}
    assert s60.shares["happy"] == 0.5
    assert s60.mean_probs["happy"] == pytest.approx((0.7 + 0.05) / 2)
    assert store.summary("cam1", 600, now=NOW).faces == 2
    assert store.summary("cam1", 10, now=NOW + 3).faces == 2
    # minute windows count whole minutes: the one 700 s ago, and the current minute in full
    # (including the face 2 s after `now`, which only a past `now` can observe)
    assert store.summary("cam1", 3600, now=NOW).faces == 4
    assert store.summary("cam1", 660, now=NOW).faces == 3  # 11 minutes back still misses 700 s ago
    assert s60.model == "fake@1" and s60.window_s == 60 and s60.until == NOW


@pytest.mark.parametrize("window", [10, 59, 60, 61, 119, 120, 121, 300, 599.5, 600, 601, 3600])
@pytest.mark.parametrize("now", [NOW, NOW + 0.5, 1_800_000_059.9, 1_800_000_060.0, 1_800_000_000.0])
def test_covering_buckets_cover_exactly_the_window(window: float, now: float) -> None:
    # given the per-second (or per-minute) buckets of a window
    resolution, buckets = window_buckets(window, now)
    covering = covering_buckets(window, now)
    if resolution == "m":
        assert covering == [("m", b) for b in buckets]
        return
    # then the covering buckets span the same seconds, each once, with whole minutes only
    seconds = []
    for res, b in covering:
        seconds.extend(range(b * 60, b * 60 + 60) if res == "m" else [b])
    assert seconds == buckets
    if window >= 180:
        assert len(covering) < len(buckets) / 2


def test_summary_from_minutes_and_edges_equals_the_per_second_sums(store: RedisStore) -> None:
    # given faces every 7 s over the last 10 minutes, with tracks
    faces = [result(NOW - k * 7, k % 7, track_id=k % 5) for k in range(85)]
    record(store, faces)
    for window in (120, 300, 600):
        # when a summary reads whole minutes from minute buckets
        s = store.summary("cam1", window, now=NOW)
        # then it equals the per-second series summed
        points = store.series("cam1", window, now=NOW)
        assert s.faces == sum(p.faces for p in points) == sum(1 for f in faces if f.ts > NOW - window)
        for label in LABELS:
            assert s.counts[label] == sum(p.counts[label] for p in points)
        assert s.distinct_tracks == len({f.track_id for f in faces if f.ts > NOW - window})


def test_dominant_tie_is_broken_by_mean_probability(store: RedisStore) -> None:
    strong_sad = EmotionResult("cam1", 0, NOW, 0, (0, 0, 1, 1), probs_for(SAD, top=0.95), "fake@1")
    record(store, [result(NOW, HAPPY), strong_sad])
    assert store.summary("cam1", 10, now=NOW).dominant == "sad"


def test_distinct_tracks_and_smoothed_tracks(store: RedisStore) -> None:
    # given track 1 seen sad then happy twice, track 2 seen once, and an untracked face
    record(store, [result(NOW - 3, SAD, track_id=1), result(NOW - 2, NEUTRAL, track_id=2)])
    record(store, [result(NOW - 1, HAPPY, track_id=1), result(NOW - 0.5, HAPPY, track_id=1)])
    record(store, [result(NOW - 0.2, SAD)])
    s = store.summary("cam1", 10, now=NOW)
    # then faces count everything but tracks are people
    assert s.faces == 5 and s.distinct_tracks == 2
    assert [t.track_id for t in s.tracks] == [1, 2]  # most recent first
    t1 = s.tracks[0]
    # EMA with alpha 0.5: sad, then two happy observations
    sad, happy = probs_for(SAD), probs_for(HAPPY)
    expected = [0.5 * h + 0.5 * (0.5 * h + 0.5 * x) for h, x in zip(happy, sad)]
    assert [t1.smoothed_probs[label] for label in LABELS] == pytest.approx(expected)
    assert t1.dominant == "happy" and t1.last_seen == NOW - 0.5
    assert s.tracks[1].dominant == "neutral"
    # and a window that ends before track 1 reappears only sees the earlier faces
    early = store.summary("cam1", 2, now=NOW - 2)
    assert early.distinct_tracks == 2 and early.faces == 2


def test_ema_follows_capture_order_within_a_batch(store: RedisStore) -> None:
    # given a batch whose faces arrive out of capture order
    record(store, [result(NOW, HAPPY, track_id=5), result(NOW - 1, SAD, track_id=5)])
    t = store.summary("cam1", 10, now=NOW).tracks[0]
    # then the newest (happy) face was blended last
    expected = [0.5 * h + 0.5 * s for h, s in zip(probs_for(HAPPY), probs_for(SAD))]
    assert [t.smoothed_probs[label] for label in LABELS] == pytest.approx(expected)
    assert t.last_seen == NOW


def test_concurrent_writers_to_one_track_lose_no_observation(store: RedisStore) -> None:
    # given two threads recording distinct faces of the same track at once
    def work(offset: int) -> None:
        for i in range(15):
            record(store, [result(NOW - 1 + offset * 0.01 + i * 0.001, HAPPY, track_id=9)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then WATCH retries made every observation count exactly once
    s = store.summary("cam1", 10, now=NOW)
    assert s.faces == 30
    assert store.client.hget(store.keys.track("cam1", 9), "n") == b"30"


def test_series_has_one_point_per_bucket(store: RedisStore) -> None:
    record(store, [result(NOW - 2, HAPPY), result(NOW - 2, HAPPY), result(NOW, SAD)])
    points = store.series("cam1", 5, now=NOW)
    assert [p.ts for p in points] == [float(second_bucket(NOW) - 4 + i) for i in range(5)]
    assert [p.faces for p in points] == [0, 0, 2, 0, 1]
    assert [p.dominant for p in points] == [None, None, "happy", None, "sad"]


def test_recent_results_newest_first(store: RedisStore) -> None:
    record(store, [result(NOW - 2, HAPPY), result(NOW - 1, SAD)])
    record(store, [result(NOW, NEUTRAL)])
    assert [r.label for r in store.recent_results("cam1", 10)] == ["neutral", "sad", "happy"]


def test_group_summary_merges_cameras(store: RedisStore) -> None:
    record(store, [result(NOW, HAPPY, "cam1", track_id=1), result(NOW, SAD, "cam2", track_id=1)])
    record(store, [result(NOW - 1, SAD, "cam2", track_id=2)])
    g = merge_summaries("lobby", [store.summary(c, 10, now=NOW) for c in ("cam1", "cam2")])
    assert g.camera_id == "lobby" and g.faces == 3 and g.distinct_tracks == 3
    assert g.dominant == "sad" and g.counts["sad"] == 2
    assert g.mean_probs["sad"] == pytest.approx((0.05 + 0.7 + 0.7) / 3)
    assert {(t.camera_id, t.track_id) for t in g.tracks} == {("cam1", 1), ("cam2", 1), ("cam2", 2)}
    with pytest.raises(ValueError):
        merge_summaries("x", [])
