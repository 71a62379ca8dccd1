"""Model tools: ``emotionpipe eval``, ``export`` (checkpoint -> shipped weights) and ``quantize``.

The work is done by :mod:`pipeline.train.evaluate` and :mod:`pipeline.train.quantize`; these
commands parse options, turn bad input into usage errors (exit 2) and print the results. The
defaults of ``--model`` and ``--runtime`` are :class:`pipeline.settings.ClassifySettings`'.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import Runtime

__all__ = ["evaluate", "export", "quantize"]

DEFAULT_DATA = "../shared/data/fer2013.npz"

ModelOpt = Annotated[str, typer.Option(help="Shipped model name.")]
WeightsOpt = Annotated[str | None, typer.Option(help="Weights .safetensors (with its .json card); overrides --model.")]


def evaluate(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="npz with x_<split> (N,48,48 uint8) and y_<split>.")],
    split: Annotated[str, typer.Option()] = "val",
    model: ModelOpt = "emonet-m",
    weights: WeightsOpt = None,
    runtime: Annotated[Runtime, typer.Option()] = Runtime.ONNX_INT8,
    tta: Annotated[bool, typer.Option("--tta", help="Average each face with its mirror image.")] = False,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N faces only.")] = None,
    through_detector: Annotated[bool, typer.Option(
        "--through-detector",
        help="Put each face, upscaled 4x, in a frame and classify what the live detector crops from it.")] = False,
    rotate: Annotated[float, typer.Option(
        metavar="DEG", help="With --through-detector: rotate the frames by DEG (tilted heads).")] = 0.0,
    against: Annotated[str | None, typer.Option(
        metavar="MODEL", help="Also run MODEL (a shipped name or a .safetensors path) on the same faces and runtime, "
        "and compare the two paired: faces only one labels right, paired standard error, McNemar's p.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Accuracy of a model on an npz split (optionally through the live detector)."""
    if rotate and not through_detector:
        ctx.fail("--rotate needs --through-detector")
    if against and through_detector:
        ctx.fail("--against compares on the dataset's crops: leave out --through-detector")
    from pipeline.classify.engine import EmotionEngine
    from pipeline.classify.metrics import classification_report, compare_paired
    from pipeline.exceptions import ModelError
    from pipeline.settings import ClassifySettings
    from pipeline.train.data import load_split
    from pipeline.train.predict import predict_labels

    try:
        x, y = load_split(data, split)
    except (OSError, KeyError, ValueError) as exc:
        ctx.fail(str(exc))
    if limit:
        x, y = x[:limit], y[:limit]
    settings = ClassifySettings(model=model, weights=weights, runtime=runtime.value, tta=tta)
    try:
        engine = EmotionEngine.load(settings)
        other = EmotionEngine.load(settings.model_copy(update=_model_or_weights(against))) if against else None
    except ModelError as exc:
        ctx.fail(str(exc))
    how = f"{engine.runtime}, TTA" if engine.tta else engine.runtime
    head = {"model": engine.name, "runtime": engine.runtime, "tta": engine.tta, "split": split}
    if through_detector:
        from pipeline.detect.detector import DetectionStage
        from pipeline.settings import DetectSettings
        from pipeline.train.reframe import evaluate_reframed

        reframed = evaluate_reframed(engine, DetectionStage(DetectSettings()), x, y, rotate)
        if as_json:
            typer.echo(json.dumps({**head, **reframed.as_dict()}))
        else:
            typer.echo(f"model {engine.name} ({how}) on {data}:{split}, through the detector\n{reframed.format()}")
        return
    labels = predict_labels(engine, x)
    report = classification_report(y, labels)
    paired = compare_paired(y, labels, predict_labels(other, x)) if other else None
    if as_json:
        extra = {"against": {"model": other.name, **paired.as_dict()}} if other and paired else {}
        typer.echo(json.dumps({**head, **report.as_dict(), **extra}))
        return
    typer.echo(f"model {engine.name} ({how}) on {data}:{split}\n{report.format()}")
    if other and paired:
        typer.echo(f"\nagainst {other.name}: accuracy {paired.accuracy_b:.4f}, difference {paired.difference:+.4f} "
                   f"(paired standard error {paired.std_error:.4f}, McNemar p = {paired.p_value:.3g})\n"
                   f"faces right only with {engine.name}: {paired.only_a}, only with {other.name}: {paired.only_b}")


def _model_or_weights(against: str) -> dict[str, object]:
    """``--against``: a path to weights when it looks like one, else a shipped model name."""
    if against.endswith(".safetensors") or Path(against).is_file():
        return {"weights": Path(against)}
    return {"model": against, "weights": None}


def export(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(
        metavar="CHECKPOINT", help="Training checkpoint (best.pt, last.pt, swa.pt).")],
    name: Annotated[str, typer.Option(help="e.g. emonet-m")],
    version: Annotated[int, typer.Option(help="Model version stored in the card (bump it).")],
    data: Annotated[str, typer.Option(help="npz whose val split is measured.")] = DEFAULT_DATA,
    out: Annotated[Path | None, typer.Option(
        help="Folder for weights, card and figure (default: the shipped pipeline/classify/weights).")] = None,
    recipe: Annotated[str, typer.Option(help="Free text stored in the card.")] = "",
    no_int8: Annotated[bool, typer.Option(
        "--no-int8", help="Skip making <name>.int8.onnx (emotionpipe quantize).")] = False,
) -> None:
    """Turn a training checkpoint into shipped weights + model card + confusion matrix + int8 model.

    A camera's aggregates are exported with `emotionpipe cameras export CAM`.
    """
    if not checkpoint.is_file():
        ctx.fail(f"checkpoint {checkpoint} not found")
    from pipeline.classify.engine import WEIGHTS_DIR, int8_path
    from pipeline.train.evaluate import export_checkpoint

    done = export_checkpoint(checkpoint, name, version, data, out or WEIGHTS_DIR, recipe, int8=not no_int8)
    typer.echo(done.report.format())
    if done.int8 is not None:
        typer.echo(f"int8 ({int8_path(done.weights).name}): accuracy {done.int8['accuracy']:.4f}, "
                   f"same top-1 as fp32 on {done.int8['top1_agreement_with_fp32']:.2%}")
    if done.validation_seen:
        typer.echo("note: this model was trained on the validation faces (--with-val): the figures above are "
                   "no measure of it; only a held-out split is")


def quantize(
    ctx: typer.Context,
    model: ModelOpt = "emonet-m",
    weights: WeightsOpt = None,
    data: Annotated[str, typer.Option(
        help="npz with x_train (calibration) and x_val/y_val (measurement).")] = DEFAULT_DATA,
    faces: Annotated[int, typer.Option(help="Training faces used for calibration.")] = 2048,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Make <weights>.int8.onnx (served by runtime onnx-int8) and record it in the model card."""
    from pipeline.classify.engine import int8_path, weights_path
    from pipeline.exceptions import ModelError
    from pipeline.settings import ClassifySettings
    from pipeline.train.quantize import quantize_weights

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        path = weights_path(ClassifySettings(model=model, weights=weights))
        section = quantize_weights(path, data, faces, seed)
    except (ModelError, KeyError, ValueError, OSError) as exc:
        ctx.fail(str(exc))
    typer.echo(f"wrote {int8_path(path)}")
    val = section.get("fer2013_val")
    if val:
        typer.echo(f"validation ({val['n']} faces): int8 accuracy {val['accuracy']:.4f} "
                   f"macro-F1 {val['macro_f1']:.4f} | fp32 {val['fp32_accuracy']:.4f} / {val['fp32_macro_f1']:.4f} | "
                   f"same top-1 as fp32 on {val['top1_agreement_with_fp32']:.2%}")
