"""Check the classifier's CUDA path where a GPU is lent: accuracy parity with the CPU
reference and faces/s per batch size. Not part of CI (CI has no GPU).

    python load_tests/gpu_engine_check.py --data fer2013.npz
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pipeline.classify.engine import EmotionEngine
from pipeline.settings import ClassifySettings
from pipeline.train.evaluate import evaluate_engine
from pipeline.train.data import load_split


def faces_per_s(engine: EmotionEngine, batch: int, seconds: float = 3.0) -> float:
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    for _ in range(5):
        engine.predict(crops)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.predict(crops)
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--batches", default="1,64,256,1024,4096")
    args = p.parse_args()
    x, y = load_split(args.data, "val")
    out = {}
    for model in ("emonet-m", "emonet-s"):
        engine = EmotionEngine.load(ClassifySettings(model=model, runtime="torch", num_gpus=1))
        acc = evaluate_engine(engine, x, y).accuracy
        rates = {b: round(faces_per_s(engine, int(b))) for b in args.batches.split(",")}
        out[model] = {"runtime": engine.runtime, "val_accuracy": round(acc, 4), "faces_per_s": rates}
        print(model, json.dumps(out[model]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
