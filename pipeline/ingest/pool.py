"""Where cameras are read: :class:`ReaderPool` places them into StreamReader actors, several per actor.

The camera manager's reconciler decides *which* cameras must be read; the pool decides *where*,
through the reconciler's spawn/stop/alive functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store.models import CameraConfig

__all__ = ["ReaderHandle", "ReaderPool"]

log = logging.getLogger(__name__)

_RPC_TIMEOUT_S = 10.0


@dataclass
class ReaderHandle:
    """One camera in a StreamReader actor, and the ObjectRef of its ``read()``: it resolves when
    the camera's stream ends, or with an error when the actor dies."""

    camera_id: str
    actor: Any
    read_ref: Any


@dataclass
class _Reader:
    actor: Any
    cameras: set[str] = field(default_factory=set)
    dead: bool = False


class ReaderPool:
    """Places cameras into StreamReader actors, up to ``ingest.cameras_per_reader`` each.

    The reconciler's spawn/stop/alive functions: while there are fewer live readers than alive
    Ray nodes, a camera gets a new reader (readers are SPREAD, so on a cluster every node reads
    some cameras and losing one node stops only its share); otherwise it goes to the live
    reader with the fewest cameras, or to a new one when all are full. A reader left without
    cameras is killed (its process and memory freed). A reader seen dead is never given cameras
    again; each of its cameras is noticed dead and respawned elsewhere by the reconciler, with
    its usual backoff.
    """

    def __init__(self, settings: Settings, loop_files: bool) -> None:
        from pipeline.ingest.actor import reader_actor_class

        self._settings = settings
        self._loop_files = loop_files
        self._actor_cls = reader_actor_class()
        self._per_reader = settings.ingest.cameras_per_reader
        self._readers: list[_Reader] = []

    def spawn(self, cfg: CameraConfig) -> ReaderHandle:
        from pipeline.ingest.sources import validate_source

        # Validate here too: an invalid URL becomes a clear health error, not a crash loop.
        validate_source(cfg.url, self._settings.ingest)
        live = [r for r in self._readers if not r.dead and len(r.cameras) < self._per_reader]
        reader = min(live, key=lambda r: len(r.cameras)) if live else None
        if reader is None or len([r for r in self._readers if not r.dead]) < _alive_nodes():
            reader = _Reader(self._actor_cls.remote(self._settings, loop_files=self._loop_files))
            self._readers.append(reader)
        reader.cameras.add(cfg.id)
        return ReaderHandle(camera_id=cfg.id, actor=reader.actor, read_ref=reader.actor.read.remote(cfg))

    def stop(self, handle: ReaderHandle) -> None:
        import ray

        reader = self._reader_of(handle)
        if reader is not None and not reader.dead:
            try:
                ray.get(handle.actor.stop.remote(handle.camera_id), timeout=_RPC_TIMEOUT_S)
            except Exception as exc:  # dead or hung: the reader is killed below if that was its last camera
                log.debug("reader stop failed: %s", type(exc).__name__)
        if reader is None:
            return
        reader.cameras.discard(handle.camera_id)
        if not reader.cameras:
            self._readers.remove(reader)
            ray.kill(reader.actor, no_restart=True)

    def alive(self, handle: ReaderHandle) -> bool:
        import ray

        ready, _ = ray.wait([handle.read_ref], timeout=0)
        if not ready:
            return True
        try:
            ray.get(handle.read_ref, timeout=0)
        except ray.exceptions.RayActorError:
            reader = self._reader_of(handle)
            if reader is not None:
                reader.dead = True
        except Exception as exc:  # the camera's stream failed; its reader still serves the others
            log.debug("camera %s: read ended: %s", handle.camera_id, type(exc).__name__)
        return False

    def _reader_of(self, handle: ReaderHandle) -> _Reader | None:
        return next((r for r in self._readers if r.actor is handle.actor), None)


def _alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))
