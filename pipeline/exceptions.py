"""Package-wide exceptions. Each stage subpackage adds its own under these bases."""


class PipelineError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(PipelineError):
    """Settings are invalid or inconsistent."""


class ContractError(PipelineError):
    """A queue message cannot be decoded (garbage, missing field, unknown version)."""


class CameraNotFound(PipelineError):
    """No camera with this id is registered."""


class CameraExists(PipelineError):
    """A camera with this id is already registered."""


class ModelError(PipelineError):
    """Model weights are missing, corrupt or incompatible."""
