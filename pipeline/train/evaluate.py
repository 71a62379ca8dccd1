"""``emotionpipe eval`` and model export (weights + model card + confusion matrix)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.classify.engine import RUNTIMES, WEIGHTS_DIR, EmotionEngine, int8_path
from pipeline.classify.metrics import Report, classification_report
from pipeline.contracts import LABELS
from pipeline.exceptions import ModelError
from pipeline.settings import ClassifySettings
from pipeline.train.trainer import load_split


def predict_labels(engine: EmotionEngine, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Top-1 label of each uint8 face, with a progress bar."""
    preds = []
    for i in tqdm(range(0, len(x), batch), desc="evaluating", unit="batch", leave=False, mininterval=1):
        preds.append(engine.predict(x[i : i + batch]).argmax(1))
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def evaluate_engine(engine: EmotionEngine, x: np.ndarray, y: np.ndarray, batch: int = 256) -> Report:
    """Run the engine over uint8 faces with a progress bar; returns the report."""
    return classification_report(y, predict_labels(engine, x, batch))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="emotionpipe eval", description="Accuracy of a model on an npz split.")
    p.add_argument("--data", required=True, help="npz with x_<split> (N,48,48 uint8) and y_<split>")
    p.add_argument("--split", default="val")
    p.add_argument("--model", default=ClassifySettings().model, help="shipped model name")
    p.add_argument("--weights", default=None, help="weights .safetensors (with its .json card)")
    p.add_argument("--runtime", default=ClassifySettings().runtime, choices=list(RUNTIMES))
    p.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N faces only")
    p.add_argument("--through-detector", action="store_true",
                   help="put each face, upscaled 4x, in a frame and classify what the live detector crops from it")
    p.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                   help="with --through-detector: rotate the frames by DEG (tilted heads)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.rotate and not args.through_detector:
        p.error("--rotate needs --through-detector")
    try:
        x, y = load_split(args.data, args.split)
    except (OSError, KeyError, ValueError) as exc:
        p.error(str(exc))
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    settings = ClassifySettings(model=args.model, weights=args.weights, runtime=args.runtime, tta=args.tta)
    try:
        engine = EmotionEngine.load(settings)
    except ModelError as exc:
        p.error(str(exc))
    how = f"{engine.runtime}, TTA" if engine.tta else engine.runtime
    head = {"model": engine.name, "runtime": engine.runtime, "tta": engine.tta, "split": args.split}
    if args.through_detector:
        from pipeline.detect.detector import FaceDetector
        from pipeline.settings import DetectSettings
        from pipeline.train.reframe import evaluate_reframed

        reframed = evaluate_reframed(engine, FaceDetector(DetectSettings()), x, y, args.rotate)
        if args.json:
            print(json.dumps({**head, **reframed.as_dict()}))
        else:
            print(f"model {engine.name} ({how}) on {args.data}:{args.split}, through the detector\n{reframed.format()}")
        return 0
    report = evaluate_engine(engine, x, y)
    if args.json:
        print(json.dumps({**head, **report.as_dict()}))
    else:
        print(f"model {engine.name} ({how}) on {args.data}:{args.split}\n{report.format()}")
    return 0


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


def export_main(argv: list[str] | None = None) -> int:
    """Turn a training checkpoint into shipped weights + card (used by maintainers)."""
    from safetensors.torch import save_file

    from pipeline.train.trainer import load_checkpoint_model

    p = argparse.ArgumentParser(prog="emotionpipe export")
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True, help="e.g. emonet-m")
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--data", default="../shared/data/fer2013.npz")
    p.add_argument("--out", default=str(WEIGHTS_DIR))
    p.add_argument("--recipe", default="", help="free text stored in the card")
    p.add_argument("--no-int8", action="store_true", help="skip making <name>.int8.onnx (emotionpipe quantize)")
    args = p.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        p.error(f"checkpoint {args.checkpoint} not found")
    from pipeline.classify.model import fuse_branches

    model, ckpt = load_checkpoint_model(args.checkpoint)
    fuse_branches(model)  # shipped weights hold the served (single-conv) form
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{args.name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    card = {"name": args.name, "arch": ckpt["arch"], "version": args.version, "metrics": {}}
    (out / f"{args.name}.json").write_text(json.dumps(card, indent=1))
    x, y = load_split(args.data, "val")
    engine = EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx"))
    labels = predict_labels(engine, x)
    report = classification_report(y, labels)
    card["metrics"] = {"fer2013_val": report.as_dict()}
    card["training"] = {"recipe": args.recipe, "epochs": ckpt.get("epoch"), "config": ckpt.get("config")}
    (out / f"{args.name}.json").write_text(json.dumps(card, indent=1))
    plot_confusion(report, out / f"{args.name}-confusion.png", f"{args.name}@{args.version} FER2013 val")
    print(report.format())
    if not args.no_int8:
        from pipeline.train.quantize import quantize_weights

        int8 = quantize_weights(weights, args.data, fp32_labels=labels)["fer2013_val"]
        print(f"int8 ({int8_path(weights).name}): accuracy {int8['accuracy']:.4f}, "
              f"same top-1 as fp32 on {int8['top1_agreement_with_fp32']:.2%}")
    return 0
