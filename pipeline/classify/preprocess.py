"""Pixel normalisation shared by training, evaluation and serving.

One definition so a served crop is scaled exactly like a training face; a
mismatch here costs accuracy silently, which the CI accuracy test guards.
"""

from __future__ import annotations

import numpy as np

MEAN = 0.5
STD = 0.25
# Side of the square gray face every classifier backend takes: the consumer resizes crops
# of other sizes to it, and the shipped networks are exported for it.
INPUT_SIZE = 48


def check_faces(crops: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``crops`` is a stack of faces ``(N, 48, 48)``."""
    if crops.ndim != 3 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}) faces, got {crops.shape}")


def normalise(crops: np.ndarray) -> np.ndarray:
    """uint8 faces ``(N, 48, 48)`` -> float32 ``(N, 1, 48, 48)`` network input."""
    check_faces(crops)
    x = crops.astype(np.float32)[:, None]
    x *= 1.0 / (255.0 * STD)
    x -= MEAN / STD
    return x
