"""Optional ``deepface`` backend (``pip install emotion-pipeline[deepface]``).

DeepFace downloads its weights on first use; this project never downloads at
run time, so the backend refuses to start unless the weights file is already
on disk, with a message that says where it must be.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.exceptions import ModelError
from pipeline.settings import ClassifySettings

WEIGHTS_FILE = "facial_expression_model_weights.h5"


class DeepFaceEngine:
    """Same interface as EmotionEngine: ``name`` and ``predict(N,48,48 uint8)``."""

    name = "deepface-emotion@1"
    runtime = "deepface"

    def __init__(self, model: object) -> None:
        self._model = model

    def predict(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32)
        x = crops.astype(np.float32)[..., None] / 255.0
        probs = np.asarray(self._model.model.predict(x, verbose=0), dtype=np.float32)  # type: ignore[attr-defined]
        # DeepFace uses the FER2013 label order too.
        return probs / probs.sum(axis=1, keepdims=True)


def load_deepface_engine(settings: ClassifySettings) -> DeepFaceEngine:
    if settings.backend != "deepface":
        raise ModelError(f"unknown classifier backend {settings.backend!r}; use emonet or deepface")
    try:
        from deepface import DeepFace
    except ImportError:
        raise ModelError("backend 'deepface' needs the extra: pip install 'emotion-pipeline[deepface]'") from None
    home = Path(os.environ.get("DEEPFACE_HOME", Path.home())) / ".deepface" / "weights" / WEIGHTS_FILE
    if not home.exists():
        raise ModelError(
            f"deepface weights not found at {home}; copy {WEIGHTS_FILE} there "
            "(this project never downloads weights at run time)"
        )
    return DeepFaceEngine(DeepFace.build_model(task="facial_attribute", model_name="Emotion"))
