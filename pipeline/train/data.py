"""The training data: FER2013-style npz splits and the tensors the loop feeds the model."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.classify.preprocess import MEAN, STD


def load_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``x_<split>`` (N,48,48 uint8) and ``y_<split>`` from an npz file."""
    with np.load(path) as data:
        keys = (f"x_{split}", f"y_{split}")
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise KeyError(f"{path} has no {', '.join(missing)} (arrays: {', '.join(data.files)})")
        x, y = data[keys[0]], data[keys[1]].astype(np.int64)
    if x.ndim != 3 or x.shape[1:] != (48, 48) or len(x) != len(y):
        raise ValueError(f"{path}: expected x_{split} (N,48,48) and y_{split} (N,), got {x.shape}, {y.shape}")
    return x, y


def to_input(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N,48,48) on any device -> normalised float (N,1,48,48); same maths as preprocess.normalise."""
    return (x_u8.float().unsqueeze(1) / 255.0 - MEAN) / STD


def autocast(dev: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a disabled (no-op) context on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")


def class_weights(y: np.ndarray, mode: str, k: int = 7) -> torch.Tensor:
    # A class absent from the data would get an infinite weight; it never appears in a batch anyway.
    counts = np.maximum(np.bincount(y, minlength=k).astype(np.float64), 1.0)
    if mode == "none":
        w = np.ones(k)
    elif mode == "sqrt":
        w = 1.0 / np.sqrt(counts)
    elif mode == "inverse":
        w = 1.0 / counts
    else:
        raise ValueError(f"class_weighting must be none|sqrt|inverse, not {mode!r}")
    return torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)
