"""Webhooks: where they may point, and delivery with retries and exponential backoff.

A webhook URL may carry a secret (``https://user:token@host/...`` or ``?token=``): it is
stored as given, because delivery needs it, but shown only through
:func:`~pipeline.common.urls.redact_url`. Error texts recorded with events hold the
exception type, the HTTP status or the policy's reason, never the URL.

Its form (http/https with a host) is checked by the rule model
(:func:`pipeline.store.models.validate_webhook_url`). Where it points is checked by the same
SSRF policy as camera URLs (:mod:`pipeline.common.netpolicy`, switches in the ``alerts``
settings): when a rule is created or its webhook changed (:func:`check_webhook_destination`,
HTTP 422) and again before every delivery, since the name may resolve elsewhere by then.
Redirects are never followed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx

from pipeline.alerts.exceptions import InvalidWebhook
from pipeline.common.backoff import backoff_delay
from pipeline.common.netpolicy import BlockedHost, HostRules, check_host
from pipeline.common.urls import redact_url
from pipeline.settings import AlertSettings

log = logging.getLogger(__name__)

#: Settings section named in policy refusals (``set alerts.allow_loopback ...``).
POLICY_SECTION = "alerts"


def _check_host(url: str, rules: HostRules) -> None:
    """Apply the policy to the host httpx would connect to; :class:`BlockedHost` says why not."""
    try:
        # The host exactly as httpx will resolve it (IDNA-encoded), so the check and the
        # connection cannot read the URL differently.
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError):  # IDNA errors are ValueErrors too
        raise BlockedHost("is not a valid host name") from None
    if not host:
        raise BlockedHost("is missing")
    # Percent-escapes are decoded (IPv6 zone ids, "127.0.0.%31"): refusing more is safe.
    check_host(unquote(host), rules, section=POLICY_SECTION)


def check_webhook_destination(url: str, rules: HostRules) -> None:
    """Refuse a webhook URL whose host the SSRF policy does not allow.

    Same rules as camera hosts: cloud metadata endpoints, unspecified, multicast and
    reserved addresses always; loopback and link-local unless ``rules`` allow them; names
    are resolved (at most ``rules.resolve_timeout_s``) and judged by every address.

    Args:
        url: A webhook URL whose form was already validated.
        rules: The ``alerts`` settings (``allow_loopback``, ``allow_link_local``,
            ``resolve_timeout_s``).

    Raises:
        InvalidWebhook: The host is refused; the message names the reason and shows the URL
            redacted.
    """
    try:
        _check_host(url, rules)
    except BlockedHost as exc:
        raise InvalidWebhook(f"webhook_url host {exc}: {redact_url(url)}") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of delivering one payload."""

    ok: bool
    attempts: int
    http_status: int | None
    error: str


def _retryable(status: int) -> bool:
    # 4xx other than 408/429 will not get better by asking again.
    return status >= 500 or status in (408, 429)


class WebhookSender:
    """POSTs JSON payloads, retrying connection errors, timeouts, 5xx, 408 and 429.

    Before the first attempt the destination is checked against the SSRF policy again
    (DNS may have changed since the rule was saved); a refused destination is not
    contacted and the delivery fails with the reason.

    Args:
        timeout_s: Per-attempt timeout (connect and read).
        attempts: Total attempts, including the first.
        backoff_initial_s: Delay before the first retry; doubled each retry.
        backoff_max_s: Delay cap.
        sleep: Injectable sleep (tests).
        client: Injectable httpx client; default one per sender (redirects not followed).
        policy: Where webhooks may point: the ``alerts`` settings; default
            ``AlertSettings()`` (no loopback, no link-local).
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
        policy: HostRules | None = None,
    ) -> None:
        self._attempts = max(1, attempts)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._sleep = sleep
        self._policy: HostRules = policy if policy is not None else AlertSettings()
        # No redirects: a webhook must not be bounced to another (internal) host.
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, url: str, payload: dict[str, Any]) -> Delivery:
        """Deliver ``payload``; never raises for network, HTTP or policy failures."""
        try:
            _check_host(url, self._policy)
        except BlockedHost as exc:
            error = f"refused: host {exc}"
            log.warning("webhook %s not called: %s", redact_url(url), error)
            return Delivery(False, 0, None, error)
        status: int | None = None
        error = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._client.post(url, json=payload, headers={"User-Agent": "emotion-pipeline-alerts"})
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                status, error = None, type(exc).__name__
            else:
                status = response.status_code
                if status < 300:
                    return Delivery(True, attempt, status, "")
                error = f"HTTP {status}"
                if not _retryable(status):
                    break
            if attempt < self._attempts:
                delay = backoff_delay(attempt - 1, self._backoff_initial, self._backoff_max)
                log.info("webhook %s attempt %d failed (%s), retrying in %.2fs", redact_url(url), attempt, error, delay)
                self._sleep(delay)
        log.warning("webhook %s failed after %d attempts: %s", redact_url(url), attempt, error)
        return Delivery(False, attempt, status, error)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
