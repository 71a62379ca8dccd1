"""Webhook URLs: validation (like camera URLs) and delivery with retries and exponential backoff.

A webhook URL may carry a secret (``https://user:token@host/...`` or ``?token=``): it is
stored as given, because delivery needs it, but shown only through
:func:`~pipeline.ingest.sources.redact_url`. Error texts recorded with events hold the
exception type and HTTP status only, never the URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from pipeline.alerts.exceptions import InvalidWebhook
from pipeline.ingest.sources import redact_url

log = logging.getLogger(__name__)

MAX_WEBHOOK_URL_LEN = 2048
WEBHOOK_SCHEMES = ("http", "https")


def validate_webhook_url(url: str) -> str:
    """Check a webhook URL: ``http``/``https`` with a host, no whitespace or control characters.

    Returns:
        The URL, stripped.

    Raises:
        InvalidWebhook: With a redacted reason.
    """
    url = url.strip()
    shown = redact_url(url)
    if not url:
        raise InvalidWebhook("webhook_url is empty")
    if len(url) > MAX_WEBHOOK_URL_LEN:
        raise InvalidWebhook(f"webhook_url is longer than {MAX_WEBHOOK_URL_LEN} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise InvalidWebhook(f"webhook_url contains whitespace or control characters: {shown!r}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InvalidWebhook(f"webhook_url is malformed: {shown!r}") from None
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise InvalidWebhook(f"webhook_url must use http or https, not {parts.scheme or 'no scheme'!r}: {shown!r}")
    if not host:
        raise InvalidWebhook(f"webhook_url has no host: {shown!r}")
    return url


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

    Args:
        timeout_s: Per-attempt timeout (connect and read).
        attempts: Total attempts, including the first.
        backoff_initial_s: Delay before the first retry; doubled each retry.
        backoff_max_s: Delay cap.
        sleep: Injectable sleep (tests).
        client: Injectable httpx client; default one per sender (redirects not followed).
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
    ) -> None:
        self._attempts = max(1, attempts)
        self._backoff = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._sleep = sleep
        # No redirects: a webhook must not be bounced to another (internal) host.
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, url: str, payload: dict[str, Any]) -> Delivery:
        """Deliver ``payload``; never raises for network or HTTP failures."""
        delay = self._backoff
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
                log.info("webhook %s attempt %d failed (%s), retrying in %.2fs", redact_url(url), attempt, error, delay)
                self._sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        log.warning("webhook %s failed after %d attempts: %s", redact_url(url), attempt, error)
        return Delivery(False, attempt, status, error)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
