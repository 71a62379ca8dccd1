"""Errors of the Redis store. Camera registry errors live in :mod:`pipeline.exceptions`."""

from pipeline.exceptions import CameraExists, CameraNotFound, PipelineError

__all__ = ["CameraExists", "CameraNotFound", "StoreError", "StoreUnavailable"]


class StoreError(PipelineError):
    """Redis answered in a way the store cannot work with."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""
