"""Batch prediction over a face array, shared by evaluation, export and int8 quantisation.

Its own module so that :mod:`pipeline.train.evaluate` (which quantises at export) and
:mod:`pipeline.train.quantize` (which compares int8 with fp32 predictions) both use it
without importing each other.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from pipeline.classify.engine import EmotionEngine


def predict_labels(engine: EmotionEngine, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Top-1 label of each uint8 face, with a progress bar."""
    preds = []
    for i in tqdm(range(0, len(x), batch), desc="evaluating", unit="batch", leave=False, mininterval=1):
        preds.append(engine.predict(x[i : i + batch]).argmax(1))
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)
