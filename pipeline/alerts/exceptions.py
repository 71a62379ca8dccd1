"""Errors of the alerting stage. Messages never contain webhook credentials."""

from pipeline.exceptions import PipelineError


class AlertError(PipelineError):
    """Base of the alerting errors."""


class AlertNotFound(AlertError):
    """No alert rule with this id exists."""


class AlertExists(AlertError):
    """An alert rule with this id exists already."""


class InvalidWebhook(AlertError, ValueError):
    """A webhook URL is malformed or not http/https (message redacted; a ValueError for pydantic)."""
