"""Errors raised by the classification stage, all under :class:`pipeline.exceptions.PipelineError`.

Every failure to load a model also derives from :class:`pipeline.exceptions.ModelError`, the
cross-stage "model unusable" base (detection's ``BackendLoadError`` shares it), so commands that
load a classifier or a detector catch one class.
"""

from __future__ import annotations

from pipeline.exceptions import ConfigError, ModelError, PipelineError


class ClassifyError(PipelineError):
    """Base of every error the classification stage raises on purpose."""


class UnknownBackend(ClassifyError, ConfigError):
    """``settings.classify.backend`` names no registered classifier backend."""


class UnknownModel(ClassifyError, ConfigError, ModelError):
    """``settings.classify.model`` names no shipped model."""


class WeightsError(ClassifyError, ModelError):
    """A weights file or its model card is missing, corrupt or made for another architecture."""


class StaleInt8Model(WeightsError):
    """The int8 model next to the weights was made from other weights (re-run ``emotionpipe quantize``)."""


class BackendLoadError(ClassifyError, ModelError):
    """A backend cannot start: its optional package is not installed or its weights are not on disk."""


class EngineOutputError(ClassifyError):
    """A classifier returned probabilities of the wrong shape or with non-finite values."""


class ClassifierDied(ClassifyError):
    """The consume loop thread of a classifier replica is no longer running."""
