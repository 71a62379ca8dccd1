"""Latest annotated frame per camera (opt-in ``keep_frames``): one short-lived key, never a history."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.aggregate.ema import TrackEma
from pipeline.store.base import StoreBase


class SnapshotOps(StoreBase):
    """Write and read the snapshot JPEG of a camera, and the labels drawn on it."""

    def set_snapshot(self, camera_id: str, jpeg: bytes, ttl_s: int) -> None:
        """Replace the camera's snapshot; it vanishes ``ttl_s`` seconds later unless replaced."""
        self.client.set(self.keys.snapshot(camera_id), jpeg, ex=max(1, int(ttl_s)))

    def get_snapshot(self, camera_id: str) -> bytes | None:
        """The camera's latest snapshot JPEG, or ``None`` when there is none (off, expired)."""
        raw = self.client.get(self.keys.snapshot(camera_id))
        # The client never decodes responses (StoreBase checks), so this is bytes or None.
        return raw if isinstance(raw, bytes) else None

    def track_dominants(self, camera_id: str, track_ids: Sequence[int]) -> dict[int, str]:
        """Smoothed dominant emotion of each track that has been classified (others are absent)."""
        ids = sorted(set(track_ids))
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keys.track(camera_id, tid))
        out = {}
        for tid, raw in zip(ids, pipe.execute()):
            state = TrackEma.from_hash(raw)
            if state is not None:
                out[tid] = state.dominant
        return out
