"""CameraReconciler with a fake registry and fake readers (no Ray, no Redis)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from pipeline.ingest.exceptions import InvalidSource
from pipeline.ingest.manager import CameraReconciler
from pipeline.ingest.sources import validate_source
from pipeline.settings import IngestSettings
from pipeline.store.models import CameraConfig

SECRET = "Zx9-s3cr3t"


class FakeStore:
    def __init__(self) -> None:
        self.cameras: dict[str, CameraConfig] = {}
        self.version = 0
        self.list_calls = 0
        self.health: dict[str, dict[str, object]] = {}
        self.broken = False

    def put(self, cfg: CameraConfig) -> None:
        self.cameras[cfg.id] = cfg
        self.version += 1

    def remove(self, camera_id: str) -> None:
        del self.cameras[camera_id]
        self.version += 1

    def registry_version(self) -> int:
        if self.broken:
            raise ConnectionError("redis down")
        return self.version

    def list_cameras(self) -> list[CameraConfig]:
        self.list_calls += 1
        return list(self.cameras.values())

    def set_health(self, camera_id: str, fields: dict[str, object]) -> None:
        self.health[camera_id] = dict(fields)


@dataclass
class FakeReader:
    cfg: CameraConfig
    alive: bool = True
    stopped: bool = False


@dataclass
class Readers:
    """spawn/stop/alive functions recording what the reconciler did."""

    spawned: list[FakeReader] = field(default_factory=list)
    fail_spawn: int = 0

    def spawn(self, cfg: CameraConfig) -> FakeReader:
        validate_source(cfg.url, IngestSettings(allow_loopback=True))  # as the Ray spawn does
        if self.fail_spawn:
            self.fail_spawn -= 1
            raise RuntimeError("no resources")
        reader = FakeReader(cfg)
        self.spawned.append(reader)
        return reader

    def stop(self, reader: FakeReader) -> None:
        reader.stopped = True
        reader.alive = False

    def live(self) -> dict[str, FakeReader]:
        return {r.cfg.id: r for r in self.spawned if not r.stopped}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cam(cid: str, **kw: object) -> CameraConfig:
    kw.setdefault("url", f"rtsp://127.0.0.1:8554/{cid}")
    return CameraConfig(id=cid, **kw)  # type: ignore[arg-type]


@pytest.fixture()
def setup() -> tuple[FakeStore, Readers, Clock, CameraReconciler]:
    store, readers, clock = FakeStore(), Readers(), Clock()
    rec = CameraReconciler(
        store,
        readers.spawn,
        readers.stop,
        alive_fn=lambda r: r.alive,
        backoff_initial_s=2.0,
        backoff_max_s=30.0,
        clock=clock,
        rng=random.Random(0),
    )
    return store, readers, clock, rec


def test_adds_and_removes_readers(setup: tuple[FakeStore, Readers, Clock, CameraReconciler]) -> None:
    store, readers, _, rec = setup
    # Given two registered cameras
    store.put(cam("a"))
    store.put(cam("b"))
    # When reconciled, then each gets exactly one reader
    report = rec.reconcile()
    assert report.started == ["a", "b"] and set(readers.live()) == {"a", "b"}
    assert rec.reconcile().changed is False
    assert len(readers.spawned) == 2
    # When one is removed, then its reader is stopped and the other is untouched
    store.remove("a")
    report = rec.reconcile()
    assert report.stopped == ["a"] and set(readers.live()) == {"b"}
    assert set(rec.running()) == {"b"}


def test_registry_is_listed_only_when_its_version_changes(
    setup: tuple[FakeStore, Readers, Clock, CameraReconciler],
) -> None:
    store, _, _, rec = setup
    store.put(cam("a"))
    for _ in range(5):
        rec.reconcile()
    assert store.list_calls == 1
    store.put(cam("b"))
    rec.reconcile()
    assert store.list_calls == 2


def test_paused_camera_is_stopped_and_resumed(setup: tuple[FakeStore, Readers, Clock, CameraReconciler]) -> None:
    store, readers, _, rec = setup
    store.put(cam("a"))
    rec.reconcile()
    store.put(cam("a", enabled=False))
    assert rec.reconcile().stopped == ["a"] and readers.live() == {}
    store.put(cam("a", enabled=True))
    assert rec.reconcile().started == ["a"] and set(readers.live()) == {"a"}


def test_config_change_restarts_but_rename_does_not(
    setup: tuple[FakeStore, Readers, Clock, CameraReconciler],
) -> None:
    store, readers, _, rec = setup
    store.put(cam("a", fps=5))
    rec.reconcile()
    first = readers.live()["a"]
    # A new name or labels: same reader, updated config
    store.put(cam("a", fps=5, name="Lobby", labels={"site": "x"}))
    assert rec.reconcile().changed is False
    assert readers.live()["a"] is first and rec.running()["a"].name == "Lobby"
    # A new fps or URL: the reader is replaced
    store.put(cam("a", fps=10))
    report = rec.reconcile()
    assert report.restarted == ["a"] and first.stopped
    assert readers.live()["a"].cfg.fps == 10
    store.put(cam("a", fps=10, url="rtsp://127.0.0.1:8554/other"))
    assert rec.reconcile().restarted == ["a"]
    assert readers.live()["a"].cfg.url.endswith("/other")


def test_dead_reader_is_respawned_with_backoff(setup: tuple[FakeStore, Readers, Clock, CameraReconciler]) -> None:
    store, readers, clock, rec = setup
    store.put(cam("a"))
    rec.reconcile()
    # Given the reader dies
    readers.live()["a"].alive = False
    # When reconciled, then the death is noticed and the corpse is cleaned up
    report = rec.reconcile()
    assert report.died == ["a"] and readers.live() == {}
    # and a respawn waits at most backoff_initial_s (2 s, full jitter)
    clock.now += 2.01
    assert rec.reconcile().restarted == ["a"]
    # A second death in a row waits up to twice as long
    readers.live()["a"].alive = False
    rec.reconcile()
    clock.now += 4.01
    assert rec.reconcile().restarted == ["a"]
    assert len(readers.spawned) == 3


def test_spawn_errors_are_retried_without_blocking_other_cameras(
    setup: tuple[FakeStore, Readers, Clock, CameraReconciler],
) -> None:
    store, readers, clock, rec = setup
    readers.fail_spawn = 1
    store.put(cam("a"))
    store.put(cam("b"))
    report = rec.reconcile()
    assert "a" in report.errors and report.started == ["b"]
    clock.now += 2.01
    assert rec.reconcile().restarted == ["a"]


def test_invalid_url_is_reported_redacted_and_not_retried(
    setup: tuple[FakeStore, Readers, Clock, CameraReconciler],
) -> None:
    store, readers, clock, rec = setup
    # Given a camera whose URL has a scheme that is not allowed
    store.put(cam("a", url=f"ftp://admin:{SECRET}@host/x"))
    report = rec.reconcile()
    # Then no reader starts, health shows the redacted reason
    assert "a" in report.invalid and readers.spawned == []
    assert store.health["a"]["state"] == "failed"
    assert "not allowed" in str(store.health["a"]["last_error"])
    assert SECRET not in str(store.health["a"]["last_error"])
    # and it is not retried until the config changes
    clock.now += 100
    assert rec.reconcile().started == [] and readers.spawned == []
    store.put(cam("a", url="rtsp://host/x"))
    assert rec.reconcile().started == ["a"]


def test_store_failure_leaves_readers_running(setup: tuple[FakeStore, Readers, Clock, CameraReconciler]) -> None:
    store, readers, _, rec = setup
    store.put(cam("a"))
    rec.reconcile()
    store.broken = True
    with pytest.raises(ConnectionError):
        rec.reconcile()
    assert set(readers.live()) == {"a"}
    store.broken = False
    assert rec.reconcile().changed is False


def test_stop_errors_do_not_keep_a_removed_camera(
    setup: tuple[FakeStore, Readers, Clock, CameraReconciler],
) -> None:
    store, readers, _, rec = setup
    store.put(cam("a"))
    rec.reconcile()

    def broken_stop(reader: FakeReader) -> None:
        raise RuntimeError("actor unreachable")

    rec._stop = broken_stop  # the reader's node vanished
    store.remove("a")
    report = rec.reconcile()
    assert report.stopped == ["a"] and "a" in report.errors and rec.running() == {}


def test_stop_all(setup: tuple[FakeStore, Readers, Clock, CameraReconciler]) -> None:
    store, readers, _, rec = setup
    store.put(cam("a"))
    store.put(cam("b"))
    rec.reconcile()
    rec.stop_all()
    assert readers.live() == {} and rec.running() == {}


def test_invalid_source_raised_by_spawn_is_the_ingest_one() -> None:
    with pytest.raises(InvalidSource):
        validate_source("gopher://x", IngestSettings())
