"""``emotionpipe analyze PATH...``: offline emotion analysis of images and videos.

Runs the live pipeline's own code (:class:`FaceDetector` for detection,
alignment and cropping, :class:`EmotionEngine` for classification) on files,
without Ray or Redis, so what it prints is what a camera showing the same
pictures would record.

A video's *dominant* emotion is the argmax of the mean probability vector
over every face in its sampled frames (a soft vote): with 2 frames per second
a short clip gives only a handful of faces, and averaging probabilities is
less jumpy than counting argmax labels when two emotions are close.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.classify.engine import RUNTIMES
from pipeline.contracts import LABELS
from pipeline.detect.analyze import FileAnalysis, analyze_paths
from pipeline.exceptions import PipelineError

__all__ = ["FileSummary", "summarize", "format_human", "main"]


@dataclass(frozen=True)
class FileSummary:
    """Per-file aggregate over all faces found in it."""

    faces: int
    dominant: str | None
    mean_probs: dict[str, float]
    label_counts: dict[str, int]


def summarize(result: FileAnalysis) -> FileSummary:
    """Dominant label (soft vote), mean probabilities and per-label face counts of one file."""
    if not result.faces:
        return FileSummary(faces=0, dominant=None, mean_probs={}, label_counts={})
    probs = np.array([[f.probs[label] for label in LABELS] for f in result.faces], dtype=np.float64)
    mean = probs.mean(axis=0)
    counts = Counter(f.label for f in result.faces)
    return FileSummary(
        faces=len(result.faces),
        dominant=LABELS[int(mean.argmax())],
        mean_probs={label: round(float(p), 4) for label, p in zip(LABELS, mean, strict=True)},
        label_counts={label: counts[label] for label in LABELS if counts[label]},
    )


def to_json(result: FileAnalysis) -> dict[str, object]:
    """The file's analysis (faces with bbox, label, probs) plus its summary fields."""
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
        s = summarize(result)
        votes = ", ".join(f"{label} {n}" for label, n in sorted(s.label_counts.items(), key=lambda kv: -kv[1]))
        assert s.dominant is not None
        lines.append(f"  dominant: {s.dominant} (mean prob {s.mean_probs[s.dominant]:.2f}; "
                     f"{s.faces} faces: {votes})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emotionpipe analyze",
        description="Detect faces and classify emotions in images, videos or folders (offline: no Ray, no Redis).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, video or folder of them")
    p.add_argument("--model", default=None, help="shipped model: emonet-m (accurate), emonet-s (fast) or "
                                                 "emonet-t (fastest); default: settings (EP_CLASSIFY__MODEL)")
    p.add_argument("--weights", default=None, help="weights .safetensors with its .json card (overrides --model)")
    p.add_argument("--runtime", choices=list(RUNTIMES), default=None,
                   help="inference runtime (default: settings)")
    p.add_argument("--tta", action="store_true", default=None,
                   help="average each face with its mirror image (2x classifier cost)")
    p.add_argument("--fps", type=float, default=2.0, help="frames per second analysed in videos")
    p.add_argument("--max-frames", type=int, default=None, help="cap on analysed frames per video")
    p.add_argument("--max-rows", type=int, default=20, help="face lines printed per file (human output)")
    p.add_argument("--json", action="store_true", help="print one JSON list (per file, per face) instead")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotionpipe analyze``.

    Returns:
        0 when every file was read, 1 when some could not be (their errors are
        still reported), 2 on a configuration or model error.
    """
    p = build_parser()
    args = p.parse_args(argv)
    if args.fps <= 0:
        p.error("--fps must be > 0")
    # The detector's onnxruntime and ours would otherwise chatter on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    # Heavy imports here: --help must not pay for onnxruntime and torch.
    from pipeline.classify.engine import EmotionEngine
    from pipeline.detect.detector import FaceDetector
    from pipeline.settings import ClassifySettings, load_settings

    try:
        settings = load_settings()
        wanted = {"model": args.model, "weights": args.weights, "runtime": args.runtime, "tta": args.tta}
        changes = {k: v for k, v in wanted.items() if v is not None}
        # Re-validate rather than model_copy(update=...), which would skip validation.
        classify = ClassifySettings(**{**settings.classify.model_dump(), **changes})
        detector = FaceDetector(settings.detect)
        engine = EmotionEngine.load(classify)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    results = analyze_paths(args.paths, detector, engine, sample_fps=args.fps, max_frames=args.max_frames)
    if not results:
        print("error: no image or video files found", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([to_json(r) for r in results], indent=1))
    else:
        print("\n\n".join(format_human(r, args.max_rows) for r in results))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
