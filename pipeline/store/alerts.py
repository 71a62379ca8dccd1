"""Alert rules, their evaluation state, firing events and the evaluator lease."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from pydantic import ValidationError

from pipeline.aggregate.buckets import BucketTotals, window_buckets
from pipeline.store.base import Pipe, StoreBase
from pipeline.store.exceptions import AlertExists, AlertNotFound, StoreError
from pipeline.store.models import AlertEvent, AlertRule, AlertState

# Extend the lease only if we hold it; otherwise take it only if free. Atomic in one script.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def _decode_rule(raw: bytes | str) -> AlertRule:
    try:
        return AlertRule.model_validate_json(raw)
    except ValidationError as exc:
        raise StoreError(f"stored alert rule is invalid: {exc.error_count()} errors") from None


class AlertOps(StoreBase):
    """CRUD of alert rules plus what the evaluator needs."""

    # -- rules ---------------------------------------------------------------------
    def add_alert(self, rule: AlertRule) -> None:
        """Store a new rule.

        Raises:
            AlertExists: If a rule with this id exists.
        """
        if not self.client.hsetnx(self.keys.alerts, rule.id, rule.model_dump_json()):
            raise AlertExists(f"alert rule {rule.id!r} exists")

    def update_alert(self, rule: AlertRule) -> None:
        """Replace a rule (its evaluation state is kept).

        Raises:
            AlertNotFound: If no rule with this id exists.
        """

        def txn(pipe: Pipe) -> None:
            if not pipe.hexists(self.keys.alerts, rule.id):
                raise AlertNotFound(f"no alert rule {rule.id!r}")
            pipe.multi()
            pipe.hset(self.keys.alerts, rule.id, rule.model_dump_json())

        self.client.transaction(txn, self.keys.alerts)

    def get_alert(self, rule_id: str) -> AlertRule:
        """One rule.

        Raises:
            AlertNotFound: If no rule with this id exists.
        """
        raw = self.client.hget(self.keys.alerts, rule_id)
        if raw is None:
            raise AlertNotFound(f"no alert rule {rule_id!r}")
        return _decode_rule(raw)

    def list_alerts(self) -> list[AlertRule]:
        """All rules, sorted by id."""
        raw = self.client.hgetall(self.keys.alerts)
        return sorted((_decode_rule(v) for v in raw.values()), key=lambda r: r.id)

    def remove_alert(self, rule_id: str) -> None:
        """Delete a rule with its state and events.

        Raises:
            AlertNotFound: If no rule with this id exists.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.alerts, rule_id)
        pipe.delete(self.keys.alert_state(rule_id), self.keys.alert_events(rule_id))
        removed, _ = pipe.execute()
        if not removed:
            raise AlertNotFound(f"no alert rule {rule_id!r}")

    # -- evaluation ----------------------------------------------------------------------
    def alert_state(self, rule_id: str) -> AlertState:
        """The evaluator's memory of a rule (defaults before its first evaluation)."""
        raw = self.client.hgetall(self.keys.alert_state(rule_id))
        return AlertState.model_validate({_text(k): json.loads(v) for k, v in raw.items()})

    def set_alert_state(self, rule_id: str, state: AlertState) -> None:
        """Replace the evaluator's memory of a rule."""
        self.client.hset(self.keys.alert_state(rule_id), mapping={
            k: json.dumps(v) for k, v in state.model_dump().items()
        })

    def add_alert_event(self, event: AlertEvent, keep: int = 100) -> None:
        """Prepend a firing event, keeping the newest ``keep``."""
        key = self.keys.alert_events(event.rule_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(key, event.model_dump_json())
        pipe.ltrim(key, 0, max(keep, 1) - 1)
        pipe.execute()

    def alert_events(self, rule_id: str, limit: int = 50) -> list[AlertEvent]:
        """Newest events of a rule, newest first."""
        raw = self.client.lrange(self.keys.alert_events(rule_id), 0, max(limit, 1) - 1)
        return [AlertEvent.model_validate_json(r) for r in raw]

    def window_totals(self, camera_ids: Sequence[str], window_s: float, now: float | None = None) -> BucketTotals:
        """Bucket totals of several cameras over the window ending at ``now`` (one round trip)."""
        now = time.time() if now is None else now
        resolution, buckets = window_buckets(window_s, now)
        pipe = self.client.pipeline(transaction=False)
        for camera_id in camera_ids:
            for b in buckets:
                pipe.hgetall(self.keys.bucket(camera_id, resolution, b))
        totals = BucketTotals()
        for raw in pipe.execute():
            if raw:
                totals.merge(BucketTotals.from_hash(raw))
        return totals

    # -- lease -------------------------------------------------------------------------
    def acquire_alert_lease(self, owner: str, ttl_ms: int) -> bool:
        """Take or extend the evaluator lease; False while another owner holds it."""
        return bool(self.client.eval(_ACQUIRE, 1, self.keys.alerts_lease, owner, int(ttl_ms)))

    def release_alert_lease(self, owner: str) -> bool:
        """Give the lease back if ``owner`` holds it."""
        return bool(self.client.eval(_RELEASE, 1, self.keys.alerts_lease, owner))
