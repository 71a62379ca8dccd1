"""The background loop that evaluates alert rules, one replica at a time.

Every API ingress replica runs an :class:`AlertRunner`; before each pass it takes or
extends a Redis lease (``SET NX PX``, extended only by its holder), so exactly one
replica evaluates while the others wait. If the holder dies, its lease expires after
``lease_ttl_s`` and another replica takes over. The loop runs in a daemon thread
because the store and the webhook sender are synchronous; the event loop serving
HTTP is never blocked by a slow webhook.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from pipeline.alerts.evaluator import AlertEvaluator, AlertStore
from pipeline.alerts.webhook import WebhookSender
from pipeline.settings import AlertSettings

log = logging.getLogger(__name__)


class AlertRunner:
    """Runs :meth:`AlertEvaluator.tick` every ``interval_s`` while holding the lease.

    Args:
        store: The Redis store.
        settings: The ``alerts`` settings section.
        evaluator: Evaluator to run; default one built from ``settings``.
        owner: Lease owner name; default host, pid and a random suffix.
    """

    def __init__(
        self,
        store: AlertStore,
        settings: AlertSettings,
        evaluator: AlertEvaluator | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.evaluator = evaluator or AlertEvaluator(
            store,
            WebhookSender(
                timeout_s=settings.webhook_timeout_s,
                attempts=settings.webhook_attempts,
                backoff_initial_s=settings.backoff_initial_s,
                backoff_max_s=settings.backoff_max_s,
                policy=settings,
            ),
            events_kept=settings.events_kept,
        )
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """One pass if this runner holds (or gets) the lease; True when it evaluated."""
        if not self.store.acquire_alert_lease(self.owner, int(self.settings.lease_ttl_s * 1000)):
            return False
        self.evaluator.tick()
        self.passes += 1
        return True

    def _loop(self) -> None:
        log.info("alert evaluator %s started (every %.1fs)", self.owner, self.settings.interval_s)
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - Redis outages must not end the loop
                log.warning("alert evaluator pass failed: %s", type(exc).__name__)
            self._stop.wait(self.settings.interval_s)

    def start(self) -> None:
        """Start the loop in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alert-evaluator", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and hand the lease back so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        try:
            self.store.release_alert_lease(self.owner)
        except Exception as exc:  # noqa: BLE001 - best effort; the lease expires anyway
            log.info("alert lease not released: %s", type(exc).__name__)
        self.evaluator.sender.close()
