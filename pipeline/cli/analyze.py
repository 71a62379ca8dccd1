"""``emotionpipe analyze PATH...``: offline emotion analysis of images and videos.

Runs the live pipeline's own code (:class:`DetectionStage` for detection,
alignment and cropping, :class:`EmotionEngine` for classification, through
:func:`pipeline.detect.analyze.analyze_paths`) on files, without Ray or Redis,
so what it prints is what a camera showing the same pictures would record.

A video's *dominant* emotion is the argmax of the mean probability vector
over every face in its sampled frames (a soft vote): with 2 frames per second
a short clip gives only a handful of faces, and averaging probabilities is
less jumpy than counting argmax labels when two emotions are close.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.options import Runtime

if TYPE_CHECKING:
    from pipeline.detect.analyze import FileAnalysis

__all__ = ["analyze", "format_human", "to_json"]


def to_json(result: FileAnalysis) -> dict[str, object]:
    """The file's analysis (faces with bbox, label, probs) plus its summary fields."""
    from pipeline.detect.analyze import summarize

    summary = summarize(result)
    return {**result.to_dict(), "dominant": summary.dominant, "mean_probs": summary.mean_probs,
            "label_counts": summary.label_counts}


def format_human(result: FileAnalysis, max_rows: int = 20) -> str:
    """A few readable lines per file: one per face (capped for long videos), then the summary."""
    head = f"{result.path} ({result.kind}"
    if result.width:
        head += f", {result.width}x{result.height}"
    if result.kind == "video":
        head += f", {result.frames_analyzed} frames analysed"
    head += f", model {result.model})"
    lines = [head]
    if result.error:
        lines.append(f"  error: {result.error}")
        return "\n".join(lines)
    if not result.faces:
        lines.append("  no faces found")
        return "\n".join(lines)
    for face in result.faces[:max_rows]:
        x, y, w, h = face.bbox
        top = face.probs[face.label]
        where = f"t={face.time_s:6.2f}s track {face.track_id:<3} " if result.kind == "video" else ""
        lines.append(f"  {where}face at x={x} y={y} w={w} h={h}: {face.label:<8} {top:.2f}")
    if len(result.faces) > max_rows:
        lines.append(f"  ... {len(result.faces) - max_rows} more faces (--max-rows, or --json for all)")
    if result.kind == "video":
        from pipeline.detect.analyze import summarize

        s = summarize(result)
        votes = ", ".join(f"{label} {n}" for label, n in sorted(s.label_counts.items(), key=lambda kv: -kv[1]))
        assert s.dominant is not None
        lines.append(f"  dominant: {s.dominant} (mean prob {s.mean_probs[s.dominant]:.2f}; "
                     f"{s.faces} faces: {votes})")
    return "\n".join(lines)


def analyze(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="Image, video or folder of them.")],
    model: Annotated[str | None, typer.Option(
        help="Shipped model: emonet-m (accurate), emonet-s (fast) or emonet-t (fastest); "
             "default: settings (EP_CLASSIFY__MODEL).")] = None,
    weights: Annotated[str | None, typer.Option(
        help="Weights .safetensors with its .json card (overrides --model).")] = None,
    runtime: Annotated[Runtime | None, typer.Option(help="Inference runtime (default: settings).")] = None,
    tta: Annotated[bool | None, typer.Option(
        "--tta", help="Average each face with its mirror image (2x classifier cost; default: settings).")] = None,
    fps: Annotated[float, typer.Option(help="Frames per second analysed in videos.")] = 2.0,
    max_frames: Annotated[int | None, typer.Option(help="Cap on analysed frames per video.")] = None,
    max_rows: Annotated[int, typer.Option(help="Face lines printed per file (human output).")] = 20,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON list (per file, per face) instead; with --labels an object "
                       "{files: [...], score: {...}}.")] = False,
    labels: Annotated[Path | None, typer.Option(
        help="CSV with a 'file' column (relative to the CSV) and an expected emotion per file: "
             "prints per-class recall over faces and files after the analysis.")] = None,
    label_column: Annotated[str | None, typer.Option(
        help="The CSV's label column (default: the first one after 'file').")] = None,
) -> None:
    """Detect faces and classify emotions in images, videos or folders (offline: no Ray, no Redis).

    Exit status: 0 when every file was read, 1 when some could not be (errors still shown), 2 on bad options or model.
    """
    if fps <= 0:
        ctx.fail("--fps must be > 0")
    if label_column and not labels:
        ctx.fail("--label-column needs --labels")
    # The detector's onnxruntime and ours would otherwise chatter on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    # Heavy imports here: --help must not pay for onnxruntime and torch.
    from pipeline.classify.backends import create_backend
    from pipeline.detect.analyze import analyze_paths
    from pipeline.detect.detector import DetectionStage
    from pipeline.detect.scoring import read_labels, score
    from pipeline.exceptions import PipelineError
    from pipeline.settings import ClassifySettings, load_settings

    try:
        expected = read_labels(labels, label_column) if labels else None
        settings = load_settings()
        wanted = {"model": model, "weights": weights, "runtime": runtime.value if runtime else None, "tta": tta}
        changes = {k: v for k, v in wanted.items() if v is not None}
        # Re-validate rather than model_copy(update=...), which would skip validation.
        classify = ClassifySettings(**{**settings.classify.model_dump(), **changes})
        detector = DetectionStage(settings.detect)
        engine = create_backend(classify)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    results = analyze_paths(paths, detector, engine, sample_fps=fps, max_frames=max_frames)
    if not results:
        typer.echo("error: no image or video files found", err=True)
        raise typer.Exit(1)
    scored = score(results, expected) if expected else None
    if as_json:
        files = [to_json(r) for r in results]
        typer.echo(json.dumps({"files": files, "score": scored.as_dict()} if scored else files, indent=1))
    else:
        typer.echo("\n\n".join(format_human(r, max_rows) for r in results))
        if scored:
            typer.echo("\n" + scored.format())
    raise typer.Exit(1 if any(r.error for r in results) else 0)
