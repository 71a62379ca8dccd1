"""Camera registry and stream health, the part of the store the API and the camera manager use."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from pipeline.exceptions import CameraExists, CameraNotFound
from pipeline.store.base import Pipe, StoreBase
from pipeline.store.exceptions import StoreError
from pipeline.store.models import CameraConfig

HealthValue = str | int | float | bool | None


def _encode_camera(cfg: CameraConfig) -> dict[str, str]:
    # One JSON value per field keeps the hash readable in redis-cli and types exact.
    return {k: json.dumps(v) for k, v in cfg.model_dump(mode="json").items()}


def _decode_camera(raw: dict[bytes, bytes]) -> CameraConfig:
    fields = CameraConfig.model_fields
    data = {k.decode(): json.loads(v) for k, v in raw.items() if k.decode() in fields}
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise StoreError(f"stored camera is invalid: {exc}") from exc


class RegistryOps(StoreBase):
    """Camera CRUD with a version counter the camera manager polls."""

    def add_camera(self, cfg: CameraConfig) -> None:
        """Register a camera.

        Raises:
            CameraExists: If a camera with this id is registered.
        """
        key = self.keys.camera(cfg.id)

        def txn(pipe: Pipe) -> None:
            if pipe.exists(key):
                raise CameraExists(cfg.id)
            pipe.multi()
            pipe.hset(key, mapping=_encode_camera(cfg))
            pipe.sadd(self.keys.cameras, cfg.id)
            pipe.incr(self.keys.registry_version)

        self.client.transaction(txn, key)

    def update_camera(self, cfg: CameraConfig) -> None:
        """Replace a camera's configuration; its ``created_at`` is kept.

        Raises:
            CameraNotFound: If no camera with this id is registered.
        """
        key = self.keys.camera(cfg.id)

        def txn(pipe: Pipe) -> None:
            stored = pipe.hget(key, "created_at")
            if stored is None:
                raise CameraNotFound(cfg.id)
            mapping = _encode_camera(cfg)
            mapping["created_at"] = stored.decode()
            pipe.multi()
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.incr(self.keys.registry_version)

        self.client.transaction(txn, key)

    def get_camera(self, camera_id: str) -> CameraConfig:
        """Fetch one camera.

        Raises:
            CameraNotFound: If no camera with this id is registered.
        """
        raw = self.client.hgetall(self.keys.camera(camera_id))
        if not raw:
            raise CameraNotFound(camera_id)
        return _decode_camera(raw)

    def list_cameras(self) -> list[CameraConfig]:
        """All registered cameras, sorted by id."""
        ids = sorted(i.decode() for i in self.client.smembers(self.keys.cameras))
        pipe = self.client.pipeline(transaction=False)
        for camera_id in ids:
            pipe.hgetall(self.keys.camera(camera_id))
        # A camera removed between SMEMBERS and HGETALL comes back empty: skip it.
        return [_decode_camera(raw) for raw in pipe.execute() if raw]

    def remove_camera(self, camera_id: str) -> None:
        """Unregister a camera. Its aggregates stay until their TTL ends.

        Raises:
            CameraNotFound: If no camera with this id is registered.
        """
        key = self.keys.camera(camera_id)

        def txn(pipe: Pipe) -> None:
            if not pipe.exists(key):
                raise CameraNotFound(camera_id)
            pipe.multi()
            pipe.delete(key, self.keys.health(camera_id))
            pipe.srem(self.keys.cameras, camera_id)
            pipe.incr(self.keys.registry_version)

        self.client.transaction(txn, key)

    def registry_version(self) -> int:
        """Counter bumped by every registry change (0 before the first)."""
        raw = self.client.get(self.keys.registry_version)
        return int(raw) if raw is not None else 0

    # -- health ----------------------------------------------------------------------
    def set_health(self, camera_id: str, fields: dict[str, HealthValue]) -> None:
        """Merge fields into a camera's health hash and refresh its TTL.

        The hash disappears ``health_ttl_s`` after the last update, so a dead
        reader shows up as missing health instead of a stale "live".
        """
        key = self.keys.health(camera_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})
        pipe.expire(key, self.options.health_ttl_s)
        pipe.execute()

    def get_health(self, camera_id: str) -> dict[str, Any]:
        """A camera's health fields with their original types; empty when expired or never set."""
        raw = self.client.hgetall(self.keys.health(camera_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def health_and_counters(self, camera_ids: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
        """Health fields and counters of several cameras in one round trip (metrics, overviews)."""
        pipe = self.client.pipeline(transaction=False)
        for camera_id in camera_ids:
            pipe.hgetall(self.keys.health(camera_id))
            pipe.hgetall(self.keys.counters(camera_id))
        raw = pipe.execute()
        out = {}
        for i, camera_id in enumerate(camera_ids):
            health = {k.decode(): json.loads(v) for k, v in raw[2 * i].items()}
            counters = {k.decode(): int(v) for k, v in raw[2 * i + 1].items()}
            out[camera_id] = (health, counters)
        return out
