"""Classifier backends as plugins chosen by a ``backend`` name.

A backend is built from :class:`~pipeline.settings.ClassifySettings` by a factory
registered with :func:`register_backend` (frigate's ``detector_types`` idea, as in
:mod:`pipeline.detect.backends`) and satisfies :class:`ClassifierBackend`: aligned
gray faces in, probabilities in :data:`~pipeline.contracts.LABELS` order out. The
consumer, the Serve replica and offline analysis only ever see that protocol.

Built-ins living in their own modules are imported lazily by :func:`create_backend`,
so importing this module never loads torch, onnxruntime or deepface.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from pipeline.classify.exceptions import BackendLoadError, UnknownBackend
from pipeline.classify.preprocess import INPUT_SIZE, check_faces
from pipeline.common.plugins import PluginRegistry
from pipeline.contracts import LABELS
from pipeline.settings import ClassifySettings

__all__ = [
    "ClassifierBackend",
    "FakeBackend",
    "available_backends",
    "create_backend",
    "register_backend",
]


@runtime_checkable
class ClassifierBackend(Protocol):
    """What every classifier backend provides (and all that its users may rely on)."""

    @property
    def name(self) -> str:
        """Model tag recorded with every result, e.g. ``emonet-m@1``."""
        ...

    @property
    def runtime(self) -> str:
        """What it runs on, e.g. ``onnx-int8/cpu``: shows a fallback without reading replica logs."""
        ...

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities of each face.

        Args:
            crops: uint8 faces ``(N, 48, 48)`` (:data:`~pipeline.classify.preprocess.INPUT_SIZE`),
                aligned and cropped by the detector; ``N`` may be 0.

        Returns:
            float ``(N, 7)``, rows summing to 1, columns in ``LABELS`` order.
        """
        ...


# Built-ins defined in modules of their own, imported on first use: emonet pulls torch or
# onnxruntime, deepface an optional package that fast unit tests and the API never need.
_BACKENDS: PluginRegistry[ClassifySettings, ClassifierBackend] = PluginRegistry(
    "classifier backend",
    {"emonet": "pipeline.classify.engine", "deepface": "pipeline.classify.deepface_backend"},
    UnknownBackend,
    BackendLoadError,
)

#: Decorator registering a backend factory (a function or a class taking a :class:`ClassifySettings`
#: as its only required argument) under a name, which must also be one of
#: :data:`~pipeline.settings.ClassifierBackendType` for settings to select it.
register_backend = _BACKENDS.register
#: Names that :func:`create_backend` accepts.
available_backends = _BACKENDS.names


def create_backend(settings: ClassifySettings) -> ClassifierBackend:
    """Build the backend named by ``settings.backend``.

    Raises:
        UnknownBackend: No backend of that name exists.
        BackendLoadError: The backend's module or optional package cannot be imported, or its
            weights are not on disk.
        WeightsError: The emonet weights, card or int8 model are missing, corrupt or stale.
    """
    return _BACKENDS.create(settings)


_HAPPY, _SAD = LABELS.index("happy"), LABELS.index("sad")


@register_backend("fake")
class FakeBackend:
    """Deterministic stand-in for unit tests: no model, no torch, no onnxruntime.

    A face brighter than mid-gray on average is 0.7 "happy", a darker one 0.7 "sad"; the
    other labels share the rest. Input is checked like a real backend's, so a wrong crop
    shape fails here as it would in production.
    """

    name: ClassVar[str] = "fake@1"
    runtime: ClassVar[str] = "fake/cpu"

    def __init__(self, settings: ClassifySettings | None = None) -> None:
        self.settings = settings

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 faces ``(N, 48, 48)`` -> ``(N, 7)``: happy when bright, sad when dark."""
        check_faces(crops)
        out = np.full((len(crops), len(LABELS)), 0.05, dtype=np.float32)
        bright = crops.reshape(len(crops), INPUT_SIZE * INPUT_SIZE).mean(axis=1) > 127
        out[bright, _HAPPY] = 0.7
        out[~bright, _SAD] = 0.7
        return out
