"""Optional ``deepface`` classifier backend: DeepFace's FER2013 emotion network.

Installed by ``make venv`` (the ``deepface`` extra plus ``deepface`` itself with
``--no-deps``: its own requirements would put a second ``cv2`` and a second
``retinaface`` package over the ones the detector uses; see pyproject.toml).

DeepFace runs its models on one of three engines (tensorflow when installed, else
pytorch, which this project always has, else onnxruntime; DeepFace's own
``DEEPFACE_BACKEND_ENGINE`` variable picks one) and reads one weights file per
engine from ``$DEEPFACE_HOME/.deepface/weights/``. It downloads a missing file on
first use; this project never downloads at run time, so the backend refuses to
start unless the file is already there, and says where it must go.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.classify.backends import register_backend
from pipeline.classify.exceptions import BackendLoadError
from pipeline.classify.preprocess import check_faces
from pipeline.contracts import LABELS
from pipeline.settings import ClassifySettings

# Weights DeepFace's emotion model reads, per engine (deepface 0.0.103). All three are the
# same network, trained on FER2013 with the label order of pipeline.contracts.LABELS.
WEIGHTS_FILES: dict[str, str] = {
    "tensorflow": "facial_expression_model_weights.h5",
    "pytorch": "facial_expression_model_weights.pth",
    "onnx": "facial_expression_model_weights.onnx",
}
INSTALL_HINT = "pip install 'emotion-pipeline[deepface]' && pip install --no-deps deepface==0.0.103"


def deepface_engine() -> str:
    """The engine DeepFace runs on here: ``tensorflow``, ``pytorch`` or ``onnx``.

    Raises:
        BackendLoadError: deepface is not installed, or its engine setting is unusable.
    """
    try:
        from deepface.commons import backend_utils
    except ImportError as exc:
        raise BackendLoadError(f"backend 'deepface' needs the extra ({INSTALL_HINT}): {exc}") from None
    try:
        return str(backend_utils.get_backend_engine())
    except ValueError as exc:  # DEEPFACE_BACKEND_ENGINE names an engine that is not installed
        raise BackendLoadError(f"deepface cannot pick an engine: {exc}") from None


def weights_file(engine: str) -> Path:
    """Where DeepFace reads the emotion weights for ``engine`` (it honours ``DEEPFACE_HOME``)."""
    from deepface.commons import folder_utils

    return Path(folder_utils.get_deepface_home()) / ".deepface" / "weights" / WEIGHTS_FILES[engine]


class DeepFaceEngine:
    """The ``deepface`` backend: DeepFace's emotion model behind :class:`ClassifierBackend`.

    Args:
        client: DeepFace's emotion model client (``DeepFace.build_model(...)``).
        engine: The engine it runs on, reported in :attr:`runtime`.
    """

    type: ClassVar[str] = "deepface"
    name: ClassVar[str] = "deepface-emotion@1"

    def __init__(self, client: Any, engine: str) -> None:
        self._client = client
        self.runtime = f"deepface/{engine}"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 faces ``(N, 48, 48)`` -> probabilities ``(N, 7)`` in label order."""
        check_faces(crops)
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        # DeepFace feeds this network gray faces scaled to [0, 1], channels last. The client's
        # public predict() wants BGR images to convert; _predict_internal() is the step after
        # that, the same on every engine. It drops the batch axis for one face: reshape.
        x = crops.astype(np.float32)[..., None] / np.float32(255.0)
        probs = np.asarray(self._client._predict_internal(x), dtype=np.float32).reshape(len(crops), len(LABELS))
        return probs / probs.sum(axis=1, keepdims=True)


@register_backend(DeepFaceEngine.type)
def load_deepface_engine(settings: ClassifySettings) -> DeepFaceEngine:
    """Build DeepFace's emotion model from weights already on disk.

    Raises:
        BackendLoadError: deepface is not installed, or the weights for its engine are not on disk.
    """
    engine = deepface_engine()
    weights = weights_file(engine)
    if not weights.is_file():
        raise BackendLoadError(
            f"deepface weights not found at {weights}; copy {weights.name} there (DEEPFACE_HOME moves the "
            f"folder; deepface runs on {engine} here). This project never downloads weights at run time."
        )
    # Importing DeepFace turns every warning off process-wide (warnings.filterwarnings("ignore")):
    # keep our filters. It also creates the weights folder, which exists by now.
    with warnings.catch_warnings():
        from deepface import DeepFace

    try:
        client = DeepFace.build_model(task="facial_attribute", model_name="Emotion")
    except Exception as exc:  # noqa: BLE001 - a corrupt or mismatched file fails in engine-specific ways
        raise BackendLoadError(f"deepface cannot load {weights}: {exc}") from exc
    return DeepFaceEngine(client, engine)
