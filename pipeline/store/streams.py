"""The faces stream: publish, consumer-group reads, reclaim, dead letters, trimming.

The stream is bounded without dropping accepted work: producers refuse (and
count) when the backlog is full, and :meth:`StreamOps.trim_acked` removes only
entries the group has delivered and acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import redis

from pipeline.contracts import FaceCrop
from pipeline.store.base import Pipe, StoreBase
from pipeline.store.keys import CLASSIFIER_GROUP, GLOBAL_SCOPE, PAYLOAD_FIELD

log = logging.getLogger(__name__)

Entry = tuple[bytes, bytes]
#: XAUTOCLAIM calls per claim_stale; each scans at most 10 × COUNT pending entries.
_MAX_CLAIM_ROUNDS = 16


def _entry(msg_id: bytes, fields: dict[bytes, bytes] | None) -> Entry:
    # An entry without our payload field (written by someone else) decodes as garbage
    # and is dead-lettered by the consumer rather than crashing it.
    return msg_id, (fields or {}).get(PAYLOAD_FIELD, b"")


def _next_id(msg_id: bytes) -> bytes:
    ms, seq = msg_id.split(b"-")
    return ms + b"-" + str(int(seq) + 1).encode()


def _is_nogroup(exc: redis.ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class StreamOps(StoreBase):
    """Producer and consumer-group operations on the faces stream."""

    group = CLASSIFIER_GROUP

    # -- producer ------------------------------------------------------------------
    def publish_faces(self, crops: list[FaceCrop]) -> int:
        """Append face crops to the stream, all or none.

        When the backlog (stream length) would exceed ``stream_maxlen`` even after
        trimming acknowledged entries, nothing is written, each crop is counted as
        ``refused`` on its camera and 0 is returned. Concurrent producers can
        overshoot the bound by at most one batch each.

        Returns:
            Number of crops written (``len(crops)`` or 0).
        """
        if not crops:
            return 0
        limit = self.options.stream_maxlen
        if self.client.xlen(self.keys.faces) + len(crops) > limit:
            self.trim_acked()
            if self.client.xlen(self.keys.faces) + len(crops) > limit:
                pipe = self.client.pipeline(transaction=True)
                for camera_id, n in Counter(c.camera_id for c in crops).items():
                    self.incr_counter(camera_id, "refused", n, pipe=pipe)
                pipe.execute()
                return 0
        pipe = self.client.pipeline(transaction=True)
        for crop in crops:
            pipe.xadd(self.keys.faces, {PAYLOAD_FIELD: crop.encode()})
        for camera_id, n in Counter(c.camera_id for c in crops).items():
            self.incr_counter(camera_id, "published", n, pipe=pipe)
        pipe.execute()
        return len(crops)

    # -- consumer group ----------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and the classifier group if missing (idempotent).

        The group starts at id 0 so crops published before any classifier started
        are still processed.
        """
        try:
            self.client.xgroup_create(self.keys.faces, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def read_faces(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        """Read new entries for ``consumer`` (XREADGROUP ``>``).

        Args:
            consumer: Consumer name, unique per process.
            count: Maximum entries.
            block_ms: Wait up to this long for entries; ``None`` or 0 = do not wait
                (Redis treats BLOCK 0 as "forever", which would hang shutdown).

        Returns:
            ``(message id, payload)`` pairs, oldest first.
        """
        block = block_ms or None
        resp: Any = None
        for attempt in range(2):
            try:
                resp = self.client.xreadgroup(
                    self.group, consumer, {self.keys.faces: ">"}, count=count, block=block
                )
                break
            except redis.ResponseError as exc:
                # The stream or group vanished (first start, FLUSHALL): recreate once.
                if not _is_nogroup(exc) or attempt:
                    raise
                self.ensure_group()
        if not resp:
            return []
        streams = resp.items() if isinstance(resp, dict) else resp  # RESP3 vs RESP2
        out: list[Entry] = []
        for _name, entries in streams:
            if entries and isinstance(entries[0], list) and not isinstance(entries[0][0], bytes):
                entries = entries[0]  # RESP3 wraps the entry list once more
            out.extend(_entry(i, f) for i, f in entries if i is not None)
        return out

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries that have been pending longer than ``min_idle_ms`` (XAUTOCLAIM).

        Covers entries of dead consumers and this consumer's own failed batches.
        Each claim increments the entry's delivery count.

        Returns:
            Up to ``count`` ``(message id, payload)`` pairs.
        """
        out: list[Entry] = []
        start: bytes | str = "0-0"
        for _ in range(_MAX_CLAIM_ROUNDS):
            try:
                resp = self.client.xautoclaim(
                    self.keys.faces, self.group, consumer, min_idle_ms, start_id=start, count=count - len(out)
                )
            except redis.ResponseError as exc:
                if _is_nogroup(exc):
                    return out
                raise
            # Redis >= 7: [next start, entries, ids deleted from the stream (already
            # dropped from the PEL by the server)]. Redis 6.2 had no third element and
            # reported deleted entries as nil, which parse to (None, None).
            next_start, entries = resp[0], resp[1]
            out.extend(_entry(i, f) for i, f in entries if i is not None)
            if next_start in (b"0-0", "0-0") or len(out) >= count:
                break
            start = next_start
        return out

    def delivery_counts(self, ids: list[bytes]) -> dict[bytes, int]:
        """How often each pending entry has been delivered; ids not pending are absent."""
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for msg_id in ids:
            pipe.xpending_range(self.keys.faces, self.group, min=msg_id, max=msg_id, count=1)
        out: dict[bytes, int] = {}
        for rows in pipe.execute(raise_on_error=False):
            if isinstance(rows, Exception):
                continue
            for row in rows:
                out[row["message_id"]] = int(row["times_delivered"])
        return out

    def ack(self, ids: list[bytes], pipe: Pipe | None = None) -> int:
        """Acknowledge entries (XACK). Returns how many were pending (0 when queued on ``pipe``)."""
        if not ids:
            return 0
        target = pipe if pipe is not None else self.client
        n = target.xack(self.keys.faces, self.group, *ids)
        return int(n) if pipe is None else 0

    def dead_letter(self, msg_id: bytes, payload: bytes, reason: str, camera_id: str | None = None) -> None:
        """Move an entry to the dead-letter stream and acknowledge it, atomically.

        Args:
            msg_id: Id of the entry in the faces stream.
            payload: Its raw payload, kept for inspection.
            reason: Why it was rejected (decode error, too many deliveries).
            camera_id: Camera, when the payload could be decoded; also counted there.
        """
        pipe = self.client.pipeline(transaction=True)
        fields: dict[str, Any] = {"id": msg_id, "d": payload, "reason": reason[:500], "ts": repr(time.time())}
        if camera_id:
            fields["camera_id"] = camera_id
        # The dead stream is a diagnostic log; capping it approximately loses no live work.
        pipe.xadd(self.keys.dead, fields, maxlen=self.options.dead_maxlen, approximate=True)
        pipe.xack(self.keys.faces, self.group, msg_id)
        self.incr_counter(GLOBAL_SCOPE, "dead_letter", 1, pipe=pipe)
        if camera_id:
            self.incr_counter(camera_id, "dead_letter", 1, pipe=pipe)
        pipe.execute()
        log.warning("dead-lettered %s: %s", msg_id.decode(errors="replace"), reason)

    def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        """Newest dead-letter entries (for inspection), newest first."""
        rows = self.client.xrevrange(self.keys.dead, count=count)
        return [{"dead_id": i, **{k.decode(): v for k, v in f.items()}} for i, f in rows]

    # -- backlog -------------------------------------------------------------------------
    def _group_info(self) -> dict[str, Any] | None:
        try:
            groups = self.client.xinfo_groups(self.keys.faces)
        except redis.ResponseError:  # no such stream
            return None
        for info in groups:
            name = info.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                return info
        return None

    def queue_stats(self) -> dict[str, int]:
        """Stream length, entries pending in the group, and entries not yet delivered (lag)."""
        length = int(self.client.xlen(self.keys.faces))
        info = self._group_info()
        if info is None:
            return {"length": length, "pending": 0, "lag": length, "consumers": 0}
        lag = info.get("lag")
        # Redis reports a nil lag when it cannot compute it cheaply; the length bounds it.
        return {
            "length": length,
            "pending": int(info.get("pending", 0)),
            "lag": int(lag) if lag is not None else length,
            "consumers": int(info.get("consumers", 0)),
        }

    def queue_lag(self) -> int:
        """Work not done yet: undelivered entries plus delivered-but-unacknowledged ones."""
        stats = self.queue_stats()
        return stats["lag"] + stats["pending"]

    def trim_acked(self) -> int:
        """Remove entries the group has delivered and acknowledged (XTRIM MINID).

        The cut is the oldest pending id, or just after the last delivered id when
        nothing is pending, so undelivered and pending entries always survive. A
        race with concurrent reads/acks can only make the cut more conservative.

        Returns:
            Number of entries removed.
        """
        info = self._group_info()
        if info is None:
            return 0
        last = info.get("last-delivered-id", b"0-0")
        last = last.encode() if isinstance(last, str) else last
        if last == b"0-0":
            return 0
        summary = self.client.xpending(self.keys.faces, self.group)
        minid = summary["min"] if summary.get("pending") else _next_id(last)
        if isinstance(minid, str):
            minid = minid.encode()
        return int(self.client.xtrim(self.keys.faces, minid=minid, approximate=False))

    def prune_consumers(self, min_idle_ms: int) -> int:
        """Forget consumers idle longer than ``min_idle_ms`` that hold no pending entries.

        Replicas come and go with autoscaling; their names would otherwise pile up in
        the group. Consumers with pending entries are kept so XAUTOCLAIM can reclaim them.
        """
        try:
            consumers = self.client.xinfo_consumers(self.keys.faces, self.group)
        except redis.ResponseError:
            return 0
        removed = 0
        for c in consumers:
            if int(c.get("pending", 0)) == 0 and int(c.get("idle", 0)) > min_idle_ms:
                # A live consumer polls every block_ms, so its idle time never gets this high.
                self.client.xgroup_delconsumer(self.keys.faces, self.group, c["name"])
                removed += 1
        return removed
