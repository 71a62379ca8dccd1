"""``emotionpipe bench {model,arch,pipeline,scaling}``: classifier and live-pipeline benchmarks.

The measuring is done by :mod:`pipeline.bench` (``run_bench``, ``bench_layouts``, ``run_ramp``,
``run_timeline``); these commands parse options, turn bad input into usage errors (exit 2) and
print the results.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import Runtime

__all__ = ["bench_app"]

bench_app = typer.Typer(no_args_is_help=True, help="Benchmark the classifier and the live pipeline.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")]
# Options every live benchmark shares: source clips, settings overrides, keeping the data dir.
VideoOpt = Annotated[list[Path] | None, typer.Option(
    "--video", help="Source video(s), repeatable; default the CREMA-D clips.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Settings override without the EP_ prefix, e.g. detect__threads=2 (repeatable).")]
KeepDataOpt = Annotated[bool, typer.Option("--keep-data", help="Keep the stack's temporary data dir (logs, AOF).")]


@bench_app.command("model")
def bench_model(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="Shipped model, or weights .safetensors with their card; repeatable "
                        "(default: every shipped model).")] = None,
    runtime: Annotated[list[Runtime] | None, typer.Option(
        "--runtime", help="Runtime, repeatable (default: all three).")] = None,
    batch: Annotated[list[int] | None, typer.Option(
        "--batch", help="Faces per call, repeatable (default: 1 and 64).")] = None,
    threads: Annotated[list[int] | None, typer.Option(
        "--threads", help="Intra-op threads, repeatable (default: 1 and all available cores).")] = None,
    seconds: Annotated[float, typer.Option(help="Measured time per configuration.")] = 2.0,
    warmup: Annotated[float, typer.Option(help="Warm-up seconds per configuration.")] = 0.5,
    repeat: Annotated[int, typer.Option(
        help="Rounds per configuration, alternating runtimes; the best round is kept.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Faces/s of the shipped classifiers: ONNX Runtime int8 (served on CPU) and fp32 vs PyTorch eager."""
    from pipeline.bench.model_bench import available_cores, environment, format_table, run_bench, shipped_models
    from pipeline.classify.engine import WEIGHTS_DIR
    from pipeline.exceptions import ModelError

    threads = threads or sorted({1, available_cores()})
    batches = batch or [1, 64]
    if any(t < 1 for t in threads) or any(b < 1 for b in batches):
        ctx.fail("--threads and --batch must be >= 1")
    if seconds <= 0 or warmup < 0 or repeat < 1:
        ctx.fail("--seconds must be > 0, --warmup >= 0 and --repeat >= 1")
    models = model or shipped_models()
    if not models:
        ctx.fail(f"no shipped models in {WEIGHTS_DIR}")
    runtimes = [r.value for r in runtime] if runtime else [r.value for r in Runtime]
    try:
        results = run_bench(models, runtimes, batches, threads, seconds, warmup, repeat)
    except ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    env = environment()
    if as_json:
        typer.echo(json.dumps({"environment": env, "seconds": seconds, "warmup_s": warmup, "repeat": repeat,
                               "results": [asdict(r) for r in results]}, indent=1))
        return
    typer.echo(f"\n{env['cores']} cores ({env['processor']}), torch {env['torch']}, "
               f"onnxruntime {env['onnxruntime']}; {seconds:g} s per configuration after {warmup:g} s warm-up, "
               f"best of {repeat}; vs eager = faces/s over PyTorch eager, same run/model/threads/batch\n")
    typer.echo(format_table(results))


@bench_app.command("arch")
def bench_arch(
    ctx: typer.Context,
    layout: Annotated[list[str] | None, typer.Option(
        "--layout", metavar="NAME=16x1,32x2,64x4,160x3",
        help="A candidate, width x layers per stage, repeatable (default: the built-in candidates).")] = None,
    batch: Annotated[int, typer.Option()] = 64,
    threads: Annotated[int, typer.Option()] = 1,
    seconds: Annotated[float, typer.Option(help="Measured time per layout and round.")] = 2.0,
    repeat: Annotated[int, typer.Option(help="Rounds, alternating layouts; the best is kept.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """int8 faces/s of candidate RepVGG layouts (random weights) against the shipped emonet layouts."""
    if batch < 1 or threads < 1 or seconds <= 0 or repeat < 1:
        ctx.fail("--batch, --threads, --repeat must be >= 1 and --seconds > 0")
    from pipeline.bench.arch_bench import CANDIDATES, bench_layouts, format_table
    from pipeline.bench.model_bench import environment

    layouts = dict(CANDIDATES)
    if layout:
        if not all("=" in item for item in layout):
            ctx.fail("--layout takes NAME=LAYOUT, e.g. r1=16x1,32x2,64x4,160x3")
        layouts = dict(item.split("=", 1) for item in layout)
    try:
        results = bench_layouts(layouts, batch, threads, seconds, repeat=repeat)
    except ValueError as exc:
        ctx.fail(str(exc))
    env = environment()
    if as_json:
        typer.echo(json.dumps({"environment": env, "results": [asdict(r) for r in results]}, indent=1))
        return
    typer.echo(f"\n{env['cores']} cores ({env['processor']}), onnxruntime {env['onnxruntime']}; int8 as served, "
               f"batch {batch}, {threads} thread(s), best of {repeat} rounds of {seconds:g} s\n")
    typer.echo(format_table(results))


def _steps(ctx: typer.Context, text: str) -> tuple[int, ...]:
    """``--steps`` as camera counts: comma-separated integers >= 1."""
    try:
        steps = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        ctx.fail(f"--steps takes camera counts separated by commas, e.g. 2,4,6; got {text!r}")
    if not steps or min(steps) < 1:
        ctx.fail(f"--steps needs at least one camera count >= 1; got {text!r}")
    return steps


def _overrides(ctx: typer.Context, items: list[str] | None) -> dict[str, str]:
    """``--set`` items as ``EP_*`` environment variables."""
    from pipeline.bench.harness import HarnessError, parse_overrides

    try:
        return parse_overrides(items or [])
    except HarnessError as exc:
        ctx.fail(str(exc))


@bench_app.command("pipeline")
def bench_pipeline(
    ctx: typer.Context,
    steps: Annotated[str, typer.Option(help="Camera counts of the ramp, comma separated.")] = "2,4,6,8,10,12",
    fps: Annotated[float, typer.Option(help="Sampling rate of every camera.")] = 5.0,
    hold: Annotated[float, typer.Option(help="Measured seconds per step.")] = 50.0,
    warmup: Annotated[float, typer.Option(help="Max seconds to wait for new cameras to go live.")] = 20.0,
    settle: Annotated[float, typer.Option(help="Seconds between live and the measured window.")] = 8.0,
    interval: Annotated[float, typer.Option(help="Sampling period (lag, CPU).")] = 2.0,
    progress: Annotated[float, typer.Option(help="Seconds between progress lines.")] = 10.0,
    mounts: Annotated[int, typer.Option(
        help="RTSP mounts (= test-server encoders, ~10 % of a core each); cameras share them round-robin, "
             "each with its own RTSP session and decoder. 0 = one per camera.")] = 2,
    server_encode: Annotated[bool, typer.Option(
        "--server-encode", help="Let the RTSP server decode and re-encode (costs ~10 % of a core per mount on the "
                                "machine under test); default: pre-encode once and pass packets through.")] = False,
    out: Annotated[Path, typer.Option(help="Where CSV + JSON go.")] = Path("bench-results"),
    stop_after_fail: Annotated[int, typer.Option(help="Stop after this many unsustained steps in a row.")] = 2,
    video: VideoOpt = None,
    set_: SetOpt = None,
    keep_data: KeepDataOpt = False,
) -> None:
    """Ramp RTSP cameras through the live stack: how many it sustains, at what latency and CPU (CSV + JSON)."""
    from pipeline.bench.pipeline_bench import RampOptions, run_ramp

    opts = RampOptions(
        steps=_steps(ctx, steps), fps=fps, hold=hold, warmup=warmup, settle=settle, interval=interval,
        progress=progress, mounts=mounts, server_encode=server_encode, out=out, stop_after_fail=stop_after_fail,
        videos=tuple(video or ()), overrides=_overrides(ctx, set_), keep_data=keep_data,
    )
    raise typer.Exit(run_ramp(opts))


@bench_app.command("detection")
def bench_detection(
    ctx: typer.Context,
    video: Annotated[list[Path] | None, typer.Option(
        "--video", help="Clip to compare, repeatable; default the CREMA-D clips, crowd.mp4, no_face.mp4 and the "
                        "clips where a face appears or leaves.")] = None,
    fps: Annotated[float, typer.Option(help="Sampling rate (the camera's fps).")] = 5.0,
    loops: Annotated[int, typer.Option(help="Times each clip is played (short clips, as looping cameras).")] = 5,
    noise: Annotated[float, typer.Option(help="Sensor noise of the degraded run, grey levels.")] = 10.0,
    shake: Annotated[float, typer.Option(help="Camera shake of the degraded run, pixels.")] = 30.0,
    set_: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Scheduled detection (full scans at an interval, tracked regions between) vs every-frame detection."""
    from pipeline.bench.detection_bench import DetectionBenchOptions, format_report, run_detection_bench
    from pipeline.bench.harness import DEFAULT_MEDIA
    from pipeline.classify.backends import create_backend
    from pipeline.settings import load_settings

    if fps <= 0 or loops < 1 or noise < 0 or shake < 0:
        ctx.fail("--fps must be > 0, --loops >= 1, --noise and --shake >= 0")
    os.environ.update(_overrides(ctx, set_))  # read by load_settings, like the stack's EP_* variables
    settings = load_settings()
    media = DEFAULT_MEDIA.parent
    photos = media.parent / "images"
    labelled = sorted(photos / row["file"] for row in csv.DictReader((photos / "labels.csv").open()) if row["label"]) \
        if (photos / "labels.csv").is_file() else []
    expression = (*sorted(DEFAULT_MEDIA.glob("*.mp4")), *labelled)
    default = tuple(sorted(DEFAULT_MEDIA.glob("*.mp4"))) + tuple(media / n for n in ("crowd.mp4", "no_face.mp4", "noface_face.mov", "face_noface.mov"))
    clips = tuple(video or default)
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        ctx.fail(f"no such clip: {', '.join(missing)}")
    opts = DetectionBenchOptions(clips=clips, expression_clips=expression, sample_fps=fps, loops=loops,
                                 noise_sigma=noise, shake_px=shake)
    report = run_detection_bench(opts, settings.detect, create_backend(settings.classify),
                                 progress=(lambda _msg: None) if as_json else print)
    typer.echo(json.dumps(report, indent=1) if as_json else format_report(report))


@bench_app.command("scaling")
def bench_scaling(
    ctx: typer.Context,
    steps: Annotated[str, typer.Option(help="Camera counts of the ramp (the last is the peak).")] = "2,4,6,8",
    fps: Annotated[float, typer.Option(help="Sampling rate of every camera.")] = 5.0,
    warm: Annotated[float, typer.Option(help="Seconds with one camera before the ramp.")] = 30.0,
    step_s: Annotated[float, typer.Option(help="Seconds per ramp step.")] = 30.0,
    peak_s: Annotated[float, typer.Option(help="Seconds at the peak camera count.")] = 60.0,
    cool_s: Annotated[float, typer.Option(help="Seconds after each load (scale-down delay + margin).")] = 75.0,
    burst_s: Annotated[float, typer.Option(help="Seconds of synthetic face burst.")] = 45.0,
    burst_rate: Annotated[float, typer.Option(help="Synthetic faces per second during the burst.")] = 600.0,
    mounts: Annotated[int, typer.Option(help="RTSP mounts shared round-robin by the cameras.")] = 2,
    out: Annotated[Path, typer.Option(help="Where the CSV and PNG go.")] = Path("bench-results"),
    video: VideoOpt = None,
    set_: SetOpt = None,
    keep_data: KeepDataOpt = False,
) -> None:
    """Autoscaling timeline: a camera ramp (detector), then a face burst (classifier); CSV + PNG."""
    from pipeline.bench.scaling_bench import ScalingOptions, run_timeline

    opts = ScalingOptions(
        steps=_steps(ctx, steps), fps=fps, warm=warm, step_s=step_s, peak_s=peak_s, cool_s=cool_s,
        burst_s=burst_s, burst_rate=burst_rate, mounts=mounts, out=out, videos=tuple(video or ()),
        overrides=_overrides(ctx, set_), keep_data=keep_data,
    )
    raise typer.Exit(run_timeline(opts))
