"""Errors of the alerting stage. Messages never contain webhook credentials.

:class:`AlertNotFound` and :class:`AlertExists` are raised by the store's rule registry and
defined in :mod:`pipeline.store.exceptions`; they are re-exported here so that callers find
every alerting error in one place.
"""

from pipeline.store.exceptions import AlertError, AlertExists, AlertNotFound

__all__ = ["AlertError", "AlertExists", "AlertNotFound", "InvalidWebhook"]


class InvalidWebhook(AlertError, ValueError):
    """A webhook URL is malformed, not http/https, or points where the policy refuses (message redacted)."""
