"""Exceptions of the ingest stage.

Messages never contain credentials: every URL in them went through
:func:`pipeline.common.urls.redact_url` first.
"""

from pipeline.exceptions import PipelineError


class IngestError(PipelineError):
    """Base of the ingest stage's errors."""


class InvalidSource(IngestError):
    """A camera source string is malformed or not allowed by the settings."""


class SourceUnavailable(IngestError):
    """A valid source could not be opened right now (network, server, device)."""

