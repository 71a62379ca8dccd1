"""FaceConsumer and the classifier worker against a real Redis, with a tiny fake engine."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest

from pipeline.classify.consumer import FaceConsumer
from pipeline.classify.deployment import ClassifierWorker, classifier_options
from pipeline.classify.exceptions import ClassifierDied, EngineOutputError
from pipeline.contracts import LABELS, EmotionResult, FaceCrop
from pipeline.settings import ClassifySettings, Settings
from pipeline.store.exceptions import StoreUnavailable
from pipeline.store.keys import CLASSIFIER_GROUP, GLOBAL_SCOPE, PAYLOAD_FIELD
from pipeline.store.redis_store import RedisStore

HAPPY = LABELS.index("happy")


class FakeEngine:
    """Returns 'happy' for bright crops and 'sad' for dark ones; records the batches it saw."""

    name = "fake@1"

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def predict(self, crops: np.ndarray) -> np.ndarray:
        assert crops.dtype == np.uint8 and crops.ndim == 3 and crops.shape[1:] == (48, 48)
        self.batches.append(crops.copy())
        out = np.full((len(crops), 7), 0.05, dtype=np.float32)
        bright = crops.reshape(len(crops), -1).mean(axis=1) > 127
        out[bright, HAPPY] = 0.7
        out[~bright, LABELS.index("sad")] = 0.7
        return out


class FailingEngine:
    name = "broken@0"

    def __init__(self, failures: int = 10**9) -> None:
        self.failures = failures
        self.calls = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("inference exploded")
        return np.full((len(crops), 7), 1 / 7, dtype=np.float32)


class WrongShapeEngine:
    name = "wrong@0"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        return np.zeros((len(crops), 3), dtype=np.float32)


def cfg(**overrides: object) -> ClassifySettings:
    base: dict[str, object] = dict(batch_size=16, block_ms=20, claim_idle_ms=60_000, max_deliveries=3)
    base.update(overrides)
    return ClassifySettings(**base)  # type: ignore[arg-type]


def crop(frame_id: int = 0, value: int = 200, shape: tuple[int, int] = (48, 48), track_id: int | None = 1) -> FaceCrop:
    return FaceCrop(
        camera_id="cam1", frame_id=frame_id, ts=time.time(), face_idx=0, bbox=(0, 0, 48, 48), det_score=0.9,
        crop=bytes([value]) * (shape[0] * shape[1]), crop_shape=shape, track_id=track_id,
    )


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore.from_url(redis_url, prefix="c:")
    yield s
    s.close()


def make_consumer(store: RedisStore, engine: object | None = None, name: str = "c1", **settings: object) -> FaceConsumer:
    # claim_interval 0: every run_once looks for stale entries, so tests need no sleeps for it
    return FaceConsumer(store, engine or FakeEngine(), cfg(**settings), name, claim_interval_s=0.0)  # type: ignore[arg-type]


def test_batch_path(store: RedisStore) -> None:
    # given 5 bright and 3 dark crops on the stream
    engine = FakeEngine()
    consumer = make_consumer(store, engine)
    store.ensure_group()
    store.publish_faces([crop(i, 200) for i in range(5)] + [crop(10 + i, 20, track_id=2) for i in range(3)])
    # when the consumer runs once
    n = consumer.run_once()
    # then one engine call classified all 8, results are recorded and acknowledged
    assert n == 8
    assert [b.shape for b in engine.batches] == [(8, 48, 48)]
    s = store.summary("cam1", 10)
    assert s.faces == 8 and s.counts["happy"] == 5 and s.counts["sad"] == 3 and s.distinct_tracks == 2
    assert s.model == "fake@1" and s.dominant == "happy"
    assert store.queue_lag() == 0
    assert consumer.stats.classified == 8 and consumer.stats.batches == 1
    # and an empty stream returns 0 after waiting block_ms
    assert consumer.run_once() == 0


def test_batches_are_capped_at_batch_size(store: RedisStore) -> None:
    consumer = make_consumer(store, batch_size=4)
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(10)])
    assert [consumer.run_once() for _ in range(4)] == [4, 4, 2, 0]


def test_garbage_and_wrong_version_are_dead_lettered_and_consumer_keeps_going(store: RedisStore) -> None:
    # given garbage, a future-version message, an entry without payload and one good crop
    consumer = make_consumer(store)
    store.ensure_group()
    store.client.xadd(store.keys.faces, {PAYLOAD_FIELD: b"\xff\xfe not msgpack"})
    future = msgpack.unpackb(crop().encode(), raw=False) | {"v": 99}
    store.client.xadd(store.keys.faces, {PAYLOAD_FIELD: msgpack.packb(future, use_bin_type=True)})
    store.client.xadd(store.keys.faces, {b"other": b"field"})
    store.publish_faces([crop(7)])
    # when the consumer runs
    assert consumer.run_once() == 1
    # then the bad three are in the dead-letter stream with reasons, nothing is pending
    dead = store.dead_letters()
    assert len(dead) == 3
    reasons = sorted(d["reason"].decode() for d in dead)
    assert any("not msgpack" in r for r in reasons)
    assert any("version 99" in r for r in reasons)
    assert store.queue_stats()["pending"] == 0
    assert store.get_counters(GLOBAL_SCOPE)["dead_letter"] == 3
    assert consumer.stats.dead_lettered == 3
    # and later good work is still processed
    store.publish_faces([crop(8)])
    assert consumer.run_once() == 1
    assert store.summary("cam1", 10).faces == 2


def test_reclaims_a_dead_consumers_pending_entries(store: RedisStore) -> None:
    # given a consumer that read 3 crops and died before acknowledging
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(3)])
    assert len(store.read_faces("dead-replica", 10, None)) == 3
    consumer = make_consumer(store, claim_idle_ms=50)
    # when they are not yet idle long enough, the live consumer leaves them alone
    assert consumer.run_once() == 0
    time.sleep(0.08)
    # then after claim_idle_ms it takes them over and records them once
    assert consumer.run_once() == 3
    assert consumer.stats.claimed == 3
    assert store.queue_stats()["pending"] == 0
    assert store.summary("cam1", 10).faces == 3


def test_reclaimed_and_new_entries_share_a_batch(store: RedisStore) -> None:
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(2)])
    store.read_faces("dead-replica", 10, None)
    store.publish_faces([crop(i) for i in range(2, 5)])
    time.sleep(0.06)
    engine = FakeEngine()
    assert make_consumer(store, engine, claim_idle_ms=50).run_once() == 5
    assert len(engine.batches) == 1


def test_entries_delivered_too_often_are_dead_lettered(store: RedisStore) -> None:
    # given an entry already delivered twice (two consumers died on it) and max_deliveries=2
    store.ensure_group()
    store.publish_faces([crop(1)])
    store.read_faces("dead-1", 1, None)
    time.sleep(0.03)
    store.claim_stale("dead-2", 20, 10)
    time.sleep(0.03)
    engine = FakeEngine()
    consumer = make_consumer(store, engine, claim_idle_ms=20, max_deliveries=2)
    # when a third consumer reclaims it (third delivery)
    assert consumer.run_once() == 0
    # then it goes to the dead-letter stream, counted on its camera, without reaching the engine
    [dead] = store.dead_letters()
    assert b"delivered 3 times" in dead["reason"] and dead["camera_id"] == b"cam1"
    assert engine.batches == []
    assert store.get_counters("cam1")["dead_letter"] == 1
    assert store.queue_stats()["pending"] == 0


def test_engine_failure_leaves_batch_pending_then_retries(store: RedisStore) -> None:
    # given an engine that fails once
    engine = FailingEngine(failures=1)
    consumer = make_consumer(store, engine, claim_idle_ms=40)
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(3)])
    # when the batch fails, it is neither acknowledged nor recorded
    with pytest.raises(RuntimeError, match="exploded"):
        consumer.run_once()
    assert store.queue_stats()["pending"] == 3
    assert store.summary("cam1", 10).faces == 0
    # then the same consumer reclaims its own stale batch and succeeds
    time.sleep(0.06)
    assert consumer.run_once() == 3
    assert store.summary("cam1", 10).faces == 3 and store.queue_stats()["pending"] == 0


def test_poison_batch_ends_in_dead_letters(store: RedisStore) -> None:
    engine = FailingEngine()
    consumer = make_consumer(store, engine, claim_idle_ms=20, max_deliveries=2)
    store.ensure_group()
    store.publish_faces([crop(1)])
    for _ in range(3):  # delivery 1, 2 fail; the 3rd delivery exceeds max_deliveries
        try:
            consumer.run_once()
        except RuntimeError:
            pass
        time.sleep(0.03)
    assert len(store.dead_letters()) == 1
    assert store.queue_lag() == 0


def test_wrong_engine_output_is_an_error(store: RedisStore) -> None:
    consumer = make_consumer(store, WrongShapeEngine())
    store.ensure_group()
    store.publish_faces([crop()])
    with pytest.raises(EngineOutputError):
        consumer.run_once()
    assert store.queue_stats()["pending"] == 1


def test_other_crop_sizes_are_resized(store: RedisStore) -> None:
    engine = FakeEngine()
    consumer = make_consumer(store, engine)
    store.ensure_group()
    store.publish_faces([crop(1, 220, shape=(64, 64)), crop(2, 10, shape=(32, 40))])
    assert consumer.run_once() == 2
    assert engine.batches[0].shape == (2, 48, 48)
    assert store.summary("cam1", 10).counts["happy"] == 1


def test_two_consumers_recording_the_same_entries_count_once(store: RedisStore) -> None:
    # given consumer A read a batch and stalled past claim_idle_ms; B reclaimed and recorded it
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(4)])
    a_entries = store.read_faces("a", 10, None)
    time.sleep(0.06)
    assert make_consumer(store, name="b", claim_idle_ms=50).run_once() == 4
    # when A wakes up and records its (identical) results
    from pipeline.contracts import EmotionResult

    results = [
        EmotionResult(c.camera_id, c.frame_id, c.ts, c.face_idx, c.bbox, (1 / 7,) * 7, "fake@1", c.track_id)
        for c in (FaceCrop.decode(p) for _, p in a_entries)
    ]
    assert store.record_results(results, [i for i, _ in a_entries]) == 0
    # then nothing is double counted
    assert store.summary("cam1", 10).faces == 4


def test_consumer_trims_acknowledged_entries(store: RedisStore) -> None:
    consumer = FaceConsumer(store, FakeEngine(), cfg(), "c1", trim_interval_s=0.0)  # type: ignore[arg-type]
    store.ensure_group()
    store.publish_faces([crop(i) for i in range(5)])
    consumer.run_once()
    consumer.run_once()  # trims what the first run acknowledged
    assert store.client.xlen(store.keys.faces) == 0
    assert consumer.stats.trimmed == 5


def test_run_forever_survives_errors_and_stops(store: RedisStore) -> None:
    # given an engine that fails on its first batch and a crop waiting
    engine = FailingEngine(failures=1)
    consumer = make_consumer(store, engine, claim_idle_ms=30, block_ms=10)
    store.ensure_group()
    store.publish_faces([crop(1)])
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,), daemon=True)
    thread.start()
    # when the loop runs, the error is counted and the crop is processed on retry
    deadline = time.monotonic() + 10
    while store.summary("cam1", 10).faces < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.summary("cam1", 10).faces == 1
    assert consumer.stats.errors == 1 and "exploded" in consumer.stats.last_error
    # then setting the event stops it promptly
    stop.set()
    thread.join(2)
    assert not thread.is_alive()


def test_worker_reports_the_runtime_it_serves_on(redis_url: str) -> None:
    # Given a worker on the shipped default engine (int8 on CPU)
    settings = Settings(redis={"url": redis_url, "prefix": "c:"})
    worker = ClassifierWorker(settings, consumer_name="w2")
    # Then its stats say which runtime serves, so an int8 -> fp32 fallback is visible
    assert worker.stats()["runtime"] == "onnx-int8/cpu"
    assert worker.stats()["model"] == "emonet-m@1"


def test_worker_stats_health_and_stop(redis_url: str, store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(redis={"url": redis_url, "prefix": "c:"}, classify={"block_ms": 10})
    worker = ClassifierWorker(settings, consumer_name="w1", engine=FakeEngine())
    worker.start()
    try:
        store.publish_faces([crop(i) for i in range(3)])
        deadline = time.monotonic() + 10
        while worker.stats()["classified"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = worker.stats()
        assert stats["classified"] == 3 and stats["consumer"] == "w1" and stats["model"] == "fake@1"
        assert stats["runtime"] == "unknown"  # FakeEngine does not say; EmotionEngine does (below)
        assert stats["queue"]["pending"] == 0 and stats["alive"] is True
        worker.check_health()
    finally:
        worker.stop()
    assert not worker.alive
    worker.check_health()  # a stopped worker is not a dead one

    # a loop thread that dies unexpectedly fails the health check
    def boom(self: FaceConsumer, stop: threading.Event) -> None:
        return  # the loop returns without being asked to stop

    monkeypatch.setattr(FaceConsumer, "run_forever", boom)
    dying = ClassifierWorker(settings, consumer_name="w2", engine=FakeEngine())
    dying.start()
    dying._thread.join(2)
    with pytest.raises(ClassifierDied):
        dying.check_health()


def test_classifier_options_come_from_settings() -> None:
    opts = classifier_options(Settings(classify={"num_cpus": 0.25, "num_gpus": 0.5}))
    assert opts["ray_actor_options"] == {"num_cpus": 0.25, "num_gpus": 0.5}


def test_group_name_is_shared() -> None:
    assert CLASSIFIER_GROUP == "classifiers"


class ListQueue:
    """A FaceQueue in memory: what the consume loop needs of the store, and nothing else."""

    def __init__(self, payloads: list[bytes], down: bool = False) -> None:
        self.pending = [(f"{i}-0".encode(), p) for i, p in enumerate(payloads)]
        self.recorded: list[tuple[str, str]] = []  # (msg id, dominant label)
        self.dead: list[tuple[bytes, str]] = []
        self.down = down

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("Redis unavailable: fake")

    def ensure_group(self) -> None:
        self._check()

    def read_faces(self, consumer: str, count: int, block_ms: int | None) -> list[tuple[bytes, bytes]]:
        self._check()
        batch, self.pending = self.pending[:count], self.pending[count:]
        return batch

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[bytes, bytes]]:
        return []

    def delivery_counts(self, ids: list[bytes]) -> dict[bytes, int]:
        return {i: 1 for i in ids}

    def dead_letter(self, msg_id: bytes, payload: bytes, reason: str, camera_id: str | None = None) -> None:
        self.dead.append((msg_id, reason))

    def record_results(self, results: list[EmotionResult], msg_ids: list[bytes], *,
                       inference_s: float | None = None) -> int:
        self.recorded += [(i.decode(), LABELS[int(np.argmax(r.probs))]) for i, r in zip(msg_ids, results)]
        return len(results)

    def trim_acked(self) -> int:
        return 0

    def prune_consumers(self, min_idle_ms: int) -> int:
        return 0


def test_consume_loop_runs_on_a_small_fake_queue() -> None:
    # Given a queue holding a bright crop, a garbage payload and a dark crop (no Redis at all)
    queue = ListQueue([crop(0, 200).encode(), b"garbage", crop(1, 20).encode()])
    consumer = FaceConsumer(queue, FakeEngine(), cfg(), "c1", claim_interval_s=0.0)
    # When the loop runs once, the crops are classified and recorded and the garbage dead-lettered.
    assert consumer.run_once() == 2
    assert queue.recorded == [("0-0", "happy"), ("2-0", "sad")]
    assert [(i, reason.split(":")[0]) for i, reason in queue.dead] == [(b"1-0", "contract")]


def test_consume_loop_backs_off_while_the_store_is_unavailable() -> None:
    # Given a store that is down, the loop keeps running, counts the failures and names the store's error.
    consumer = FaceConsumer(ListQueue([], down=True), FakeEngine(), cfg(), "c1")
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,), kwargs={"max_backoff_s": 0.05})
    thread.start()
    time.sleep(0.5)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert consumer.stats.errors >= 3 and consumer.stats.last_error.startswith("StoreUnavailable")
