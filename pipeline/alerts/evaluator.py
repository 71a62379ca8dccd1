"""One evaluation pass over all alert rules (a plain class: no Ray, no FastAPI).

Semantics, per enabled rule:

- the *value* is the summed share of the rule's labels among the faces of its camera
  (or of the cameras currently in its group) over the rule's window ending now;
- the *condition* holds when at least ``min_faces`` faces were seen and
  ``value <op> threshold``;
- the rule *fires* on the rising edge of the condition (false at the previous pass, true
  now), unless it fired less than ``cooldown`` ago. A condition that stays true does not
  fire again; it has to clear first. An edge inside the cooldown is swallowed.

The state (condition at the last pass, last firing) lives in Redis and is written
*before* the webhook is called, so a replica taking the lease over mid-delivery does not
fire the same edge again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pipeline.aggregate.buckets import BucketTotals
from pipeline.alerts.webhook import Delivery, WebhookSender
from pipeline.contracts import LABELS
from pipeline.store.models import AlertEvent, AlertRule, AlertState, CameraConfig

log = logging.getLogger(__name__)


class AlertStore(Protocol):
    """The part of :class:`pipeline.store.redis_store.RedisStore` alerting needs.

    Every method may raise :class:`pipeline.store.exceptions.StoreError`.
    """

    def list_cameras(self) -> list[CameraConfig]: ...

    def window_totals(self, camera_ids: Sequence[str], window_s: float, now: float | None = None) -> BucketTotals: ...

    def list_alerts(self) -> list[AlertRule]: ...

    def alert_state(self, rule_id: str) -> AlertState: ...

    def set_alert_state(self, rule_id: str, state: AlertState) -> None: ...

    def add_alert_event(self, event: AlertEvent, keep: int = 100) -> None: ...

    def acquire_alert_lease(self, owner: str, ttl_ms: int) -> bool: ...

    def release_alert_lease(self, owner: str) -> bool: ...


class AlertEvaluator:
    """Evaluates the stored rules and delivers firings.

    Args:
        store: The Redis store (rules, state, events, buckets).
        sender: Webhook sender (retries, backoff, timeouts).
        events_kept: Events kept per rule.
        clock: Wall clock (tests pass their own ``now`` to :meth:`tick` instead).
    """

    def __init__(
        self,
        store: AlertStore,
        sender: WebhookSender,
        *,
        events_kept: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sender = sender
        self.events_kept = events_kept
        self._clock = clock

    def measure(self, rule: AlertRule, now: float) -> tuple[float, int]:
        """The rule's share value and the face count of its window."""
        if rule.camera_id is not None:
            cameras = [rule.camera_id]
        else:
            cameras = [c.id for c in self.store.list_cameras() if rule.group in c.groups]
        if not cameras:
            return 0.0, 0
        totals = self.store.window_totals(cameras, rule.window, now)
        if totals.faces == 0:
            return 0.0, 0
        hits = sum(totals.counts[LABELS.index(label)] for label in rule.labels)
        return hits / totals.faces, totals.faces

    def tick(self, now: float | None = None) -> list[AlertEvent]:
        """Evaluate every enabled rule once; deliver and record the firings.

        A rule whose evaluation raises is logged and skipped; the others still run.

        Returns:
            The events fired in this pass.
        """
        now = self._clock() if now is None else now
        fired = []
        for rule in self.store.list_alerts():
            if not rule.enabled:
                continue
            try:
                event = self._evaluate(rule, now)
            except Exception:  # one broken rule must not silence the others
                log.exception("alert %s: evaluation failed", rule.id)
                continue
            if event is not None:
                fired.append(event)
        return fired

    def _evaluate(self, rule: AlertRule, now: float) -> AlertEvent | None:
        value, faces = self.measure(rule, now)
        holds = rule.holds(value, faces)
        state = self.store.alert_state(rule.id)
        cooled = state.last_fired is None or now - state.last_fired >= rule.cooldown
        fire = holds and not state.active and cooled
        self.store.set_alert_state(rule.id, AlertState(
            active=holds,
            last_fired=now if fire else state.last_fired,
            last_value=value,
            last_faces=faces,
            last_eval=now,
        ))
        if not fire:
            return None
        log.info("alert %s fired on %s: %.3f %s %.3f over %d faces", rule.id, rule.target, value, rule.op,
                 rule.threshold, faces)
        event_id = secrets.token_hex(8)
        delivery = self._deliver(rule, self._payload(rule, event_id, now, value, faces))
        event = AlertEvent(
            id=event_id,
            rule_id=rule.id,
            target=rule.target,
            ts=now,
            value=value,
            faces=faces,
            status="recorded" if delivery is None else ("delivered" if delivery.ok else "failed"),
            attempts=delivery.attempts if delivery else 0,
            http_status=delivery.http_status if delivery else None,
            error=delivery.error if delivery else "",
        )
        self.store.add_alert_event(event, self.events_kept)
        return event

    def _deliver(self, rule: AlertRule, payload: dict[str, Any]) -> Delivery | None:
        if rule.webhook_url is None:
            return None
        return self.sender.send(rule.webhook_url, payload)

    @staticmethod
    def _payload(rule: AlertRule, event_id: str, now: float, value: float, faces: int) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "rule_id": rule.id,
            "description": rule.description,
            "camera_id": rule.camera_id,
            "group": rule.group,
            "labels": list(rule.labels),
            "window_s": rule.window,
            "op": rule.op,
            "threshold": rule.threshold,
            "value": round(value, 6),
            "faces": faces,
            "ts": now,
        }
