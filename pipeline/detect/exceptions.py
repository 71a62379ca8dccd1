"""Errors raised by the detection stage, all under :class:`pipeline.exceptions.PipelineError`."""

from __future__ import annotations

from pipeline.exceptions import ConfigError, ModelError, PipelineError


class DetectError(PipelineError):
    """Base of every error the detection stage raises on purpose."""


class UnknownBackend(DetectError, ConfigError):
    """``settings.detect.backend`` names no registered detector backend."""


class BackendLoadError(DetectError, ModelError):
    """A detector backend could not load its model (missing package, corrupt weights)."""


class InvalidFrame(DetectError):
    """A frame is not a uint8 image of shape (H, W) or (H, W, 3)."""


class PublishError(DetectError):
    """Face crops could not be handed to the store (Redis unreachable, not a refusal)."""


class MediaError(DetectError):
    """A file given to :func:`pipeline.detect.analyze.analyze_paths` cannot be read."""


class LabelsError(DetectError):
    """A labels file given to ``emotionpipe analyze --labels`` cannot be used (missing, malformed)."""
