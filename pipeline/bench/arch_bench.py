"""Served int8 speed of candidate layouts, before any training (``emotionpipe bench arch``).

Speed does not depend on the weights, so a layout can be judged before spending
days training it: each candidate is built with random weights, its branches
folded (:func:`fuse_branches`), exported to ONNX and quantised with the exact
recipe the shipped models use (:func:`quantize_onnx`, calibrated on random
faces), then timed through :class:`EmotionEngine` as a classifier replica calls
it. The shipped ``emonet-*`` layouts go through the same path in the same run,
so the ratios against them hold whatever else the machine is doing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from pipeline.bench.model_bench import measure

__all__ = ["ArchResult", "CANDIDATES", "bench_layouts", "format_table"]

BASELINES = ("emonet-t", "emonet-s", "emonet-m")

# Width x layers per stage (48, 24, 12, 6 px): most of the capacity late, where a channel is cheap.
CANDIDATES: dict[str, str] = {
    "r-a": "16x1,32x2,64x3,192x3",
    "r-b": "16x1,32x2,64x4,128x4",
    "r-c": "16x1,32x2,80x3,160x3",
    "r-d": "16x1,24x2,64x4,192x3",
    "r-e": "16x1,32x3,64x4,160x3",
    "r-f": "16x1,32x2,96x3,192x2",
    "r-g": "16x1,32x2,64x4,256x2",
    "r-h": "16x1,48x2,80x4,160x4",
}


@dataclass(frozen=True)
class ArchResult:
    """Served int8 speed of one layout (1 thread unless told otherwise)."""

    name: str
    layout: str
    mmacs: float
    params_k: float
    batch: int
    threads: int
    faces_per_s: float
    vs_emonet_s: float | None = None


def _int8_engine(name: str, model, threads: int, seed: int):  # -> EmotionEngine
    from pipeline.classify.engine import EmotionEngine, ModelCard, onnx_runner, onnx_bytes
    from pipeline.classify.model import fuse_branches
    from pipeline.train.quantize import quantize_onnx

    model.eval()
    fuse_branches(model)
    calibration = np.random.default_rng(seed).integers(0, 256, size=(256, 48, 48), dtype=np.uint8)
    int8, _ = quantize_onnx(onnx_bytes(model), calibration)
    return EmotionEngine(ModelCard(name=name, arch=name, version=0, metrics={}), onnx_runner(int8, threads),
                         "onnx-int8/cpu")


def bench_layouts(layouts: dict[str, str], batch: int = 64, threads: int = 1, seconds: float = 2.0,
                  warmup_s: float = 0.5, repeat: int = 3, progress: bool = True) -> list[ArchResult]:
    """Measure the baselines and ``layouts`` (name -> layout string), alternating, best round kept.

    Raises:
        ValueError: a layout string is malformed.
    """
    import torch

    from pipeline.classify.model import RepNet, build_model, count_macs, parse_layout

    torch.manual_seed(0)  # random weights: speed does not depend on them, but runs stay comparable
    models = {name: build_model(name) for name in BASELINES}
    models |= {name: RepNet(parse_layout(layout)) for name, layout in layouts.items()}
    engines, meta = {}, {}
    for name, model in models.items():
        meta[name] = (count_macs(model) / 1e6, sum(p.numel() for p in model.parameters()) / 1e3)
        engines[name] = _int8_engine(name, model, threads, seed=0)
        if progress:
            print(f"built {name}: {meta[name][0]:.1f} MMAC", file=sys.stderr, flush=True)
    torch.set_num_threads(max(1, threads))
    faces = np.random.default_rng(0).integers(0, 256, size=(batch, 48, 48), dtype=np.uint8)
    best: dict[str, float] = {}
    for round_ in range(repeat):
        for name, engine in engines.items():
            calls, elapsed, _ = measure(engine, faces, seconds, warmup_s)
            rate = calls * batch / elapsed
            best[name] = max(best.get(name, 0.0), rate)
            if progress:
                print(f"round {round_ + 1}/{repeat} {name:<9} {rate:8.1f} faces/s", file=sys.stderr, flush=True)
    base = best["emonet-s"]
    return [
        ArchResult(name=name, layout=layouts.get(name, "emonet"), mmacs=round(meta[name][0], 1),
                   params_k=round(meta[name][1], 1), batch=batch, threads=threads,
                   faces_per_s=round(best[name], 1), vs_emonet_s=round(best[name] / base, 2))
        for name in models
    ]


def format_table(results: list[ArchResult]) -> str:
    """Human-readable table, one row per layout."""
    head = f"{'name':<10}{'layout':<26}{'MMAC':>7}{'params k':>10}{'faces/s':>10}{'vs emonet-s':>13}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:<10}{r.layout:<26}{r.mmacs:>7.1f}{r.params_k:>10.1f}{r.faces_per_s:>10.1f}"
                     f"{r.vs_emonet_s:>12.2f}x")
    return "\n".join(lines)
