"""Errors of the Redis store. Camera registry errors live in :mod:`pipeline.exceptions`.

The alert rule registry errors (:class:`AlertNotFound`, :class:`AlertExists`) are raised by
the store and defined here, under :class:`AlertError`; :mod:`pipeline.alerts.exceptions`
re-exports them with the alerting stage's own errors, so the store need not import the stage.
"""

from pipeline.exceptions import CameraExists, CameraNotFound, PipelineError

__all__ = [
    "AlertError",
    "AlertExists",
    "AlertNotFound",
    "CameraExists",
    "CameraNotFound",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(PipelineError):
    """Redis answered in a way the store cannot work with."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""


class AlertError(PipelineError):
    """Base of the alerting errors (messages never contain webhook credentials)."""


class AlertNotFound(AlertError):
    """No alert rule with this id exists."""


class AlertExists(AlertError):
    """An alert rule with this id exists already."""
