"""Keep every enabled camera in the registry read by exactly one reader.

:class:`CameraReconciler` is the logic (plain, tested with fakes); :class:`CameraManager`
is the detached Ray actor that runs it every ``ingest.reconcile_interval_s``, with a
:class:`~pipeline.ingest.pool.ReaderPool` placing cameras into StreamReader actors (several per actor).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.common.backoff import backoff_delay
from pipeline.exceptions import ConfigError
from pipeline.ingest.exceptions import InvalidSource

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store.models import CameraConfig

log = logging.getLogger(__name__)

MANAGER_NAME = "camera-manager"
MANAGER_NUM_CPUS = 0.05
_RPC_TIMEOUT_S = 10.0


class RegistryStore(Protocol):
    """The part of ``RedisStore`` the reconciler uses."""

    def registry_version(self) -> int: ...

    def list_cameras(self) -> list[CameraConfig]: ...

    def set_health(self, camera_id: str, fields: dict[str, Any]) -> None: ...


SpawnFn = Callable[["CameraConfig"], Any]
StopFn = Callable[[Any], None]
AliveFn = Callable[[Any], bool]


def fingerprint(cfg: CameraConfig) -> tuple[Any, ...]:
    """The fields whose change needs a reader restart (name and labels do not)."""
    return (cfg.url, float(cfg.fps), cfg.keep_frames)


@dataclass
class _Running:
    cfg: CameraConfig
    handle: Any
    started: float


@dataclass
class ReconcileReport:
    """What one :meth:`CameraReconciler.reconcile` pass did (camera ids)."""

    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    died: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.stopped or self.restarted or self.died)


class CameraReconciler:
    """Diffs the enabled cameras in the registry against the running readers.

    Starts readers for new cameras, stops readers of removed or paused ones,
    restarts readers whose config changed and respawns dead ones with exponential
    backoff (full jitter). A camera whose URL is invalid is not spawned again until
    its config changes; its health shows the (redacted) reason.

    Args:
        store: Registry access (``RedisStore``).
        spawn_fn: Starts a reader for a camera, returns a handle. May raise
            :class:`~pipeline.ingest.exceptions.InvalidSource`.
        stop_fn: Stops and frees a reader given its handle.
        alive_fn: Whether a reader handle is still running; default: always.
        backoff_initial_s: First delay before respawning a dead reader.
        backoff_max_s: Cap of that delay; a reader alive this long resets it.
        clock: Monotonic clock (fake in tests).
        rng: Jitter source (seeded in tests).
    """

    def __init__(
        self,
        store: RegistryStore,
        spawn_fn: SpawnFn,
        stop_fn: StopFn,
        *,
        alive_fn: AliveFn | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._spawn = spawn_fn
        self._stop = stop_fn
        self._alive = alive_fn or (lambda _handle: True)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._running: dict[str, _Running] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._invalid: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._version: int | None = None
        self._wanted: dict[str, CameraConfig] = {}

    def running(self) -> dict[str, CameraConfig]:
        """Configs of the cameras that have a running reader."""
        with self._lock:
            return {cid: r.cfg for cid, r in self._running.items()}

    def reconcile(self) -> ReconcileReport:
        """One pass: read the registry (only if its version changed), then converge.

        Raises:
            Exception: Whatever the store raises when the registry cannot be read;
                running readers are left untouched in that case.
        """
        with self._lock:
            version = self._store.registry_version()
            if version != self._version:
                # Version first, list second: a change in between only causes one extra re-list.
                self._wanted = {c.id: c for c in self._store.list_cameras() if c.enabled}
                self._version = version
            report = ReconcileReport()
            now = self._clock()
            for camera_id in sorted(set(self._running) - set(self._wanted)):
                self._stop_reader(camera_id, report)
                report.stopped.append(camera_id)
                self._forget(camera_id)
            for camera_id in set(self._invalid) - set(self._wanted):
                del self._invalid[camera_id]
            for camera_id, cfg in sorted(self._wanted.items()):
                self._converge(camera_id, cfg, now, report)
            if report.changed:
                log.info("reconcile: %s", report)
            return report

    def stop_all(self) -> None:
        """Stop every running reader (manager shutdown)."""
        with self._lock:
            report = ReconcileReport()
            for camera_id in list(self._running):
                self._stop_reader(camera_id, report)
            self._version = None

    # -- internals --------------------------------------------------------------------

    def _converge(self, camera_id: str, cfg: CameraConfig, now: float, report: ReconcileReport) -> None:
        running = self._running.get(camera_id)
        respawn = False
        if running is not None:
            if fingerprint(running.cfg) != fingerprint(cfg):
                self._stop_reader(camera_id, report)
                self._failures.pop(camera_id, None)
                self._retry_at.pop(camera_id, None)
                respawn = True
            elif not self._is_alive(running.handle):
                self._stop_reader(camera_id, report)
                report.died.append(camera_id)
                self._schedule_retry(camera_id, now)
                log.warning("camera %s: reader died; respawn in %.1fs", camera_id, self._retry_at[camera_id] - now)
                return
            else:
                if now - running.started >= self._backoff_max:
                    self._failures.pop(camera_id, None)
                running.cfg = cfg  # name/labels may have changed; no restart needed
                return
        invalid = self._invalid.get(camera_id)
        if invalid is not None:
            if invalid[0] == fingerprint(cfg):
                self._report_invalid(camera_id, invalid[1], report)
                return
            del self._invalid[camera_id]
        if self._retry_at.get(camera_id, 0.0) > now:
            return
        try:
            handle = self._spawn(cfg)
        except InvalidSource as exc:
            self._invalid[camera_id] = (fingerprint(cfg), str(exc))
            self._report_invalid(camera_id, str(exc), report)
            return
        except Exception as exc:  # one camera failing to start must not block the others
            report.errors[camera_id] = f"{type(exc).__name__}: {str(exc)[:200]}"
            self._schedule_retry(camera_id, now)
            log.warning("camera %s: reader did not start: %s", camera_id, report.errors[camera_id])
            return
        self._running[camera_id] = _Running(cfg=cfg, handle=handle, started=now)
        self._retry_at.pop(camera_id, None)
        (report.restarted if respawn or camera_id in self._failures else report.started).append(camera_id)

    def _report_invalid(self, camera_id: str, message: str, report: ReconcileReport) -> None:
        report.invalid[camera_id] = message
        try:
            self._store.set_health(camera_id, {"state": "failed", "last_error": message, "updated_at": time.time()})
        except Exception as exc:  # health is best effort; the registry read already worked
            log.debug("camera %s: health write failed: %s", camera_id, type(exc).__name__)

    def _schedule_retry(self, camera_id: str, now: float) -> None:
        failures = self._failures.get(camera_id, 0)
        self._failures[camera_id] = failures + 1
        self._retry_at[camera_id] = now + backoff_delay(failures, self._backoff_initial, self._backoff_max, self._rng)

    def _is_alive(self, handle: Any) -> bool:
        try:
            return bool(self._alive(handle))
        except Exception:  # a probe that cannot answer means the reader is gone
            return False

    def _stop_reader(self, camera_id: str, report: ReconcileReport) -> None:
        running = self._running.pop(camera_id, None)
        if running is None:
            return
        try:
            self._stop(running.handle)
        except Exception as exc:  # the reader may already be dead; it is forgotten either way
            report.errors[camera_id] = f"stop: {type(exc).__name__}"
            log.warning("camera %s: stopping reader failed: %s", camera_id, type(exc).__name__)

    def _forget(self, camera_id: str) -> None:
        self._failures.pop(camera_id, None)
        self._retry_at.pop(camera_id, None)
        self._invalid.pop(camera_id, None)


# --------------------------------------------------------------------------- Ray side
class CameraManager:
    """Detached actor running :class:`CameraReconciler` in a background thread.

    Args:
        settings: The settings tree (Redis, ingest).
        loop_files: Loop file sources (demo cameras).
    """

    def __init__(self, settings: Settings, loop_files: bool = False) -> None:
        from pipeline.store.redis_store import RedisStore

        self._interval = settings.ingest.reconcile_interval_s
        self._store = RedisStore.from_settings(settings)
        from pipeline.ingest.pool import ReaderPool

        pool = ReaderPool(settings, loop_files)
        self._reconciler = CameraReconciler(self._store, pool.spawn, pool.stop, alive_fn=pool.alive)
        self._halt = threading.Event()
        self._last_error = ""
        self._thread = threading.Thread(target=self._loop, name="camera-reconciler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self._reconciler.reconcile()
                self._last_error = ""
            except Exception as exc:  # Redis down: keep readers as they are, retry next round
                message = f"{type(exc).__name__}: {str(exc)[:200]}"
                if message != self._last_error:
                    log.warning("reconcile failed: %s", message)
                self._last_error = message
            self._halt.wait(self._interval)

    def status(self) -> dict[str, Any]:
        """Running camera ids and the last reconcile error."""
        return {"running": sorted(self._reconciler.running()), "last_error": self._last_error}

    def shutdown(self) -> None:
        """Stop the loop and every reader."""
        self._halt.set()
        self._thread.join(self._interval + _RPC_TIMEOUT_S)
        self._reconciler.stop_all()
        self._store.close()


def start_camera_manager(settings: Settings, loop_files: bool = False) -> Any:
    """Get or create the detached ``camera-manager`` actor in ``settings.ray.namespace``.

    Raises:
        ConfigError: ``settings.redis.url`` is unset. Checked here because the actor
            restarts forever (``max_restarts=-1``) and would crash-loop on it.
    """
    import ray

    if not settings.redis.url:
        raise ConfigError("settings.redis.url is unset: start Redis (embedded or not) and set its URL first")

    actor_cls = ray.remote(CameraManager)
    return actor_cls.options(
        name=MANAGER_NAME,
        namespace=settings.ray.namespace,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        num_cpus=MANAGER_NUM_CPUS,
    ).remote(settings, loop_files)


def stop_camera_manager(namespace: str, timeout: float = 30.0) -> bool:
    """Stop the manager's readers and kill it. Returns False if it was not running."""
    import ray

    try:
        actor = ray.get_actor(MANAGER_NAME, namespace=namespace)
    except ValueError:
        return False
    try:
        ray.get(actor.shutdown.remote(), timeout=timeout)
    except Exception as exc:  # kill regardless; a detached actor must not outlive this call
        log.warning("camera manager shutdown failed: %s", type(exc).__name__)
    ray.kill(actor, no_restart=True)
    return True
