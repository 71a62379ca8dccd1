"""Model evaluation and export (weights + model card + confusion matrix).

The commands (``emotionpipe eval``, ``emotionpipe export``) are in :mod:`pipeline.cli.model`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify.engine import EmotionEngine
from pipeline.classify.metrics import Report, classification_report
from pipeline.contracts import LABELS
from pipeline.settings import ClassifySettings
from pipeline.train.data import load_split
from pipeline.train.predict import predict_labels


def plot_confusion(report: Report, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report.confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(7), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(7), LABELS)
    for i in range(7):
        for j in range(7):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class Export:
    """What :func:`export_checkpoint` wrote and measured."""

    weights: Path
    report: Report
    int8: dict[str, Any] | None  # the int8 model's validation figures; None when not made or not measured
    validation_seen: bool  # trained on the validation faces (--with-val): its figures are no measure


def export_checkpoint(
    checkpoint: Path, name: str, version: int, data: str, out: Path, recipe: str = "", int8: bool = True
) -> Export:
    """Turn a training checkpoint into shipped weights + card + confusion figure (+ int8 model).

    The weights are stored in the served (branch-fused) form; the card gets the validation
    report of ``data`` and the training recipe, including whether the validation faces were
    trained on (``training.validation_seen``).

    Raises:
        KeyError, ValueError, OSError: unusable ``data``.
    """
    from safetensors.torch import save_file

    from pipeline.classify.model import fuse_branches
    from pipeline.train.checkpoint import load_checkpoint_model

    model, ckpt = load_checkpoint_model(checkpoint)
    fuse_branches(model)  # shipped weights hold the served (single-conv) form
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    card: dict[str, Any] = {"name": name, "arch": ckpt["arch"], "version": version, "metrics": {}}
    (out / f"{name}.json").write_text(json.dumps(card, indent=1))
    x, y = load_split(data, "val")
    engine = EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx"))
    labels = predict_labels(engine, x)
    report = classification_report(y, labels)
    card["metrics"] = {"fer2013_val": report.as_dict()}
    seen = bool(ckpt.get("validation_seen"))
    card["training"] = {
        "recipe": recipe,
        "epochs": ckpt.get("epoch"),
        "validation_seen": seen,
        "config": ckpt.get("config"),
    }
    (out / f"{name}.json").write_text(json.dumps(card, indent=1))
    title = f"{name}@{version} FER2013 val{' (trained on)' if seen else ''}"
    plot_confusion(report, out / f"{name}-confusion.png", title)
    if not int8:
        return Export(weights, report, None, seen)
    from pipeline.train.quantize import quantize_weights

    section = quantize_weights(weights, data, fp32_labels=labels)
    return Export(weights, report, section.get("fer2013_val"), seen)
