"""Live pipeline benchmark: how many cameras the local stack sustains, at what latency and CPU.

Starts real components — the GStreamer RTSP test server looping face videos (640x480), the
local stack through ``emotionpipe up --detach`` (embedded Redis, local Ray, Serve app, camera
manager) on its own ports and data dir — then ramps the number of cameras (registered through
``POST /cameras``) and holds each step. Per step it measures frame rates and drops from the
cameras' health, faces published/classified, the faces-stream lag at the start and end,
end-to-end latency (frame capture -> aggregate committed, the store's latency samples) and
CPU/RSS per stage by grouping the stack's processes by their Ray process titles.

A step is **sustained** when every camera is processed at >= 90 % of its fps, the stream lag
does not grow, and latency p95 < 1 s. Everything is torn down on exit, Ctrl-C and errors.

Run: ``python load_tests/camera_ramp.py --steps 2,4,6,8,10,12 --hold 60`` (or
``emotionpipe bench pipeline ...``). Results go to ``--out`` as CSV + JSON.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bench.harness import HarnessError, LiveStack, percentile, source_videos
from pipeline.bench.procstats import STAGES, StageSampler

SUSTAIN_FPS_RATIO = 0.9
SUSTAIN_P95_S = 1.0


@dataclass(frozen=True)
class RampOptions:
    """One ramp's settings (the command's options; defaults in :mod:`pipeline.cli.bench`)."""

    steps: tuple[int, ...]  # camera counts (run in ascending order, duplicates once)
    fps: float  # sampling rate of every camera
    hold: float  # measured seconds per step
    warmup: float  # max seconds to wait for new cameras to go live
    settle: float  # seconds between live and the measured window
    interval: float  # sampling period (lag, CPU)
    progress: float  # seconds between progress lines
    mounts: int  # RTSP mounts shared round-robin by the cameras; 0 = one per camera
    server_encode: bool  # the RTSP server decodes and re-encodes instead of passing packets through
    out: Path  # where CSV + JSON go
    stop_after_fail: int  # stop after this many unsustained steps in a row
    videos: tuple[Path, ...] = ()  # source clips; empty = the CREMA-D clips
    overrides: dict[str, str] = field(default_factory=dict)  # EP_* settings for the stack
    keep_data: bool = False  # keep the stack's temporary data dir


@dataclass
class StepResult:
    """Measurements of one ramp step (rates are per second over the measured window)."""

    cameras: int
    window_s: float
    fps_target: float
    fps_in_per_cam: float = 0.0  # frames decoded from the stream
    fps_sent_per_cam: float = 0.0  # frames sent to detection
    fps_processed_per_cam: float = 0.0  # sent minus detection errors/timeouts
    fps_processed_min_cam: float = 0.0  # the worst camera
    dropped_per_s: float = 0.0  # latest-frame drops (detection saturated), all cameras
    detect_errors: int = 0
    faces_published_per_s: float = 0.0
    faces_classified_per_s: float = 0.0
    refused: int = 0
    lag_start: int = 0
    lag_end: int = 0
    lag_max: int = 0
    lag_growth: float = 0.0  # fitted growth over the window, entries
    latency_n: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    detect_ms: float = 0.0  # mean health latency_ms (send -> detection result)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core per stage
    rss_mb: dict[str, float] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    system_cpu_pct: float = 0.0  # whole machine, % of all cores
    top_others: dict[str, float] = field(default_factory=dict)  # busiest processes outside the stack
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sustained: bool = False
    reasons: list[str] = field(default_factory=list)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) points; 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var > 0 else 0.0


# --------------------------------------------------------------------------- the run
class PipelineBench:
    """Drives one ramp against a freshly started stack."""

    def __init__(self, opts: RampOptions, live: LiveStack, sampler: StageSampler):
        self.opts = opts
        self.live = live
        self.store = live.store
        self.sampler = sampler
        self.cameras: list[str] = []

    def add_cameras(self, n: int) -> None:
        while len(self.cameras) < n:
            i = len(self.cameras)
            cam_id = f"bench-{i:02d}"
            self.live.add_camera(cam_id, self.live.camera_url(i), self.opts.fps)
            self.cameras.append(cam_id)

    def healths(self) -> dict[str, dict[str, Any]]:
        return {c: self.store.get_health(c) for c in self.cameras}

    def published(self) -> int:
        return sum(self.store.get_counters(c).get("published", 0) for c in self.cameras)

    def refused(self) -> int:
        return sum(self.store.get_counters(c).get("refused", 0) for c in self.cameras)

    def wait_live(self, timeout: float) -> None:
        """Wait until every camera is live and has sent frames since the last check."""
        deadline = time.monotonic() + timeout
        first = {c: int(h.get("frames_sent", 0)) for c, h in self.healths().items()}
        while time.monotonic() < deadline:
            time.sleep(1.0)
            hs = self.healths()
            if all(h.get("state") == "live" and int(h.get("frames_sent", 0)) > first[c] for c, h in hs.items()):
                return
        late = [c for c, h in self.healths().items() if h.get("state") != "live"]
        print(f"  warning: cameras not live after {timeout:.0f}s: {late}", flush=True)

    def run_step(self, n: int) -> StepResult:
        opts = self.opts
        self.add_cameras(n)
        self.wait_live(opts.warmup)
        time.sleep(opts.settle)  # let the detector/classifier (and autoscaler) settle on the new load
        h0 = self.healths()
        pub0, ref0 = self.published(), self.refused()
        t0 = time.time()
        self.sampler.begin()
        lags: list[tuple[float, float]] = [(0.0, float(self.store.queue_lag()))]
        next_progress = time.monotonic() + opts.progress
        while time.time() - t0 < opts.hold:
            time.sleep(min(opts.interval, max(0.05, opts.hold - (time.time() - t0))))
            self.sampler.sample()
            lags.append((time.time() - t0, float(self.store.queue_lag())))
            if time.monotonic() >= next_progress:
                next_progress += opts.progress
                self.progress(n, t0, h0, pub0, lags)
        t1 = time.time()
        h1 = self.healths()
        pub1, ref1 = self.published(), self.refused()
        stats = self.sampler.end()
        return self.summarize(n, t0, t1, h0, h1, pub1 - pub0, ref1 - ref0, lags, stats)

    def progress(self, n: int, t0: float, h0: dict[str, dict[str, Any]], pub0: int, lags: list[tuple[float, float]]) -> None:
        dt = time.time() - t0
        hs = self.healths()
        sent = sum(int(hs[c].get("frames_sent", 0)) - int(h0[c].get("frames_sent", 0)) for c in self.cameras)
        drop = sum(int(hs[c].get("dropped", 0)) - int(h0[c].get("dropped", 0)) for c in self.cameras)
        lat = self.latencies(t0)
        p95 = percentile(lat, 95)
        cpu = self.sampler.running_cpu()
        cpu_s = " ".join(f"{k}={cpu[k]:.0f}%" for k in ("ingest", "detect", "classify", "redis", "rtsp") if k in cpu)
        print(
            f"  [N={n:2d} t={dt:4.0f}s] sent {sent / dt / n:4.2f}/s/cam drop {drop / dt:5.2f}/s "
            f"pub {(self.published() - pub0) / dt:5.1f} faces/s lag {lags[-1][1]:.0f} "
            f"p95 {'-' if p95 is None else f'{p95:.2f}s'} cpu {cpu_s} load {os.getloadavg()[0]:.2f}",
            flush=True,
        )

    def latencies(self, since: float) -> list[float]:
        out: list[float] = []
        for c in self.cameras:
            out.extend(self.store.latency_samples(c, since=since))
        return out

    def summarize(
        self,
        n: int,
        t0: float,
        t1: float,
        h0: dict[str, dict[str, Any]],
        h1: dict[str, dict[str, Any]],
        published: int,
        refused: int,
        lags: list[tuple[float, float]],
        stats: dict[str, Any],
    ) -> StepResult:
        dt = t1 - t0
        fps = self.opts.fps

        def delta(c: str, key: str) -> int:
            return int(h1.get(c, {}).get(key, 0)) - int(h0.get(c, {}).get(key, 0))

        # Idle frames (nothing tracked, no full scan due) are processed too: they need no detection.
        processed = {c: (delta(c, "frames_sent") + delta(c, "frames_idle") - delta(c, "detect_errors")) / dt
                     for c in self.cameras}
        lat = self.latencies(t0)
        lat = [v for v in lat if v >= 0]
        lag_growth = slope(lags) * dt
        res = StepResult(
            cameras=n,
            window_s=round(dt, 1),
            fps_target=fps,
            fps_in_per_cam=sum(delta(c, "frames_in") for c in self.cameras) / dt / n,
            fps_sent_per_cam=sum(delta(c, "frames_sent") for c in self.cameras) / dt / n,
            fps_processed_per_cam=sum(processed.values()) / n,
            fps_processed_min_cam=min(processed.values()),
            dropped_per_s=sum(delta(c, "dropped") for c in self.cameras) / dt,
            detect_errors=sum(delta(c, "detect_errors") for c in self.cameras),
            faces_published_per_s=published / dt,
            faces_classified_per_s=(published - (lags[-1][1] - lags[0][1])) / dt,
            refused=refused,
            lag_start=int(lags[0][1]),
            lag_end=int(lags[-1][1]),
            lag_max=int(max(y for _, y in lags)),
            lag_growth=round(lag_growth, 1),
            latency_n=len(lat),
            latency_p50_s=percentile(lat, 50),
            latency_p95_s=percentile(lat, 95),
            latency_p99_s=percentile(lat, 99),
            latency_max_s=max(lat) if lat else None,
            detect_ms=sum(float(h1.get(c, {}).get("latency_ms", 0.0)) for c in self.cameras) / n,
            cpu=stats["cpu"],
            rss_mb=stats["rss_mb"],
            replicas=stats["replicas"],
            system_cpu_pct=stats["system_cpu_pct"],
            top_others=stats["top_others"],
            loadavg=os.getloadavg(),
        )
        # Growing lag: the fitted growth over the window exceeds both a small absolute
        # floor and 5 % of what was published (queue noise from batching stays below).
        lag_limit = max(20.0, 0.05 * published)
        if res.fps_processed_min_cam < SUSTAIN_FPS_RATIO * fps:
            res.reasons.append(f"fps {res.fps_processed_min_cam:.2f} < {SUSTAIN_FPS_RATIO * fps:.2f}")
        if lag_growth > lag_limit or res.refused:
            res.reasons.append(f"lag grows {res.lag_start}->{res.lag_end}")
        if res.latency_p95_s is None or res.latency_p95_s >= SUSTAIN_P95_S:
            res.reasons.append("p95 >= 1 s" if lat else "no latency samples")
        res.sustained = not res.reasons
        return res


# --------------------------------------------------------------------------- output
def table(results: list[StepResult]) -> str:
    """Markdown table of the ramp (README-ready)."""
    stages = [s for s in (*STAGES, "other") if any(s in r.cpu for r in results)]
    head = (
        ["cams", "proc fps/cam (min)", "drop/s", "faces/s", "lag start→end", "p50 s", "p95 s", "p99 s"]
        + [f"CPU {s} %" for s in stages]
        + ["RSS MB", "load1", "sustained"]
    )
    rows = []
    for r in results:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        rows.append(
            [
                str(r.cameras),
                f"{r.fps_processed_per_cam:.2f} ({r.fps_processed_min_cam:.2f})",
                f"{r.dropped_per_s:.2f}",
                f"{r.faces_classified_per_s:.1f}",
                f"{r.lag_start}→{r.lag_end}",
                f(r.latency_p50_s),
                f(r.latency_p95_s),
                f(r.latency_p99_s),
            ]
            + [f"{r.cpu.get(s, 0.0):.0f}" for s in stages]
            + [f"{sum(v for k, v in r.rss_mb.items() if k != 'bench'):.0f}", f"{r.loadavg[0]:.2f}",
               "yes" if r.sustained else "no: " + "; ".join(r.reasons)]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out: Path, results: list[StepResult], meta: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jpath, cpath = out / f"pipeline-{stamp}.json", out / f"pipeline-{stamp}.csv"
    jpath.write_text(json.dumps({"meta": meta, "steps": [asdict(r) for r in results]}, indent=2))
    stages = sorted({k for r in results for k in r.cpu})
    with cpath.open("w", newline="") as fh:
        w = csv.writer(fh)
        scalar = [k for k, v in asdict(results[0]).items() if not isinstance(v, (dict, list, tuple))] if results else []
        w.writerow(scalar + [f"cpu_{s}" for s in stages] + [f"rss_mb_{s}" for s in stages] + ["load1", "reasons"])
        for r in results:
            d = asdict(r)
            w.writerow(
                [d[k] for k in scalar] + [r.cpu.get(s, 0.0) for s in stages] + [r.rss_mb.get(s, 0.0) for s in stages]
                + [r.loadavg[0], "; ".join(r.reasons)]
            )
    return jpath, cpath


# --------------------------------------------------------------------------- run
def run_ramp(opts: RampOptions) -> int:
    """Run the camera ramp, print the table, write CSV + JSON.

    Returns:
        The exit status: 0 when the ramp ran (the largest sustained step is printed), 1 on
        errors, 130 when interrupted (Ctrl-C, SIGTERM); the stack is torn down in every case.
    """
    steps = sorted(set(opts.steps))
    try:
        videos = source_videos(list(opts.videos), opts.mounts if opts.mounts > 0 else max(steps))
    except HarnessError as exc:
        print(exc, file=sys.stderr)
        return 1

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    results: list[StepResult] = []
    meta: dict[str, Any] = {}
    status = 0
    try:
        with LiveStack(videos, dict(opts.overrides), server_encode=opts.server_encode,
                       keep_data=opts.keep_data) as live:
            meta = live.meta()
            assert live.rtsp is not None
            sampler = StageSampler(live.state.pid, live.rtsp.pid, bench_pid=os.getpid())
            bench = PipelineBench(opts, live, sampler)
            fails = 0
            for n in steps:
                print(f"step N={n}: adding cameras ...", flush=True)
                r = bench.run_step(n)
                results.append(r)
                p95 = "-" if r.latency_p95_s is None else f"{r.latency_p95_s:.2f}"
                print(f"step N={n}: {r.fps_processed_per_cam:.2f} fps/cam (min {r.fps_processed_min_cam:.2f}), "
                      f"drop {r.dropped_per_s:.2f}/s, lag {r.lag_start}->{r.lag_end}, p95 {p95}s, "
                      f"cpu detect {r.cpu.get('detect', 0):.0f}% classify {r.cpu.get('classify', 0):.0f}% "
                      f"other {r.cpu.get('other', 0):.0f}% {r.top_others} "
                      f"-> {'SUSTAINED' if r.sustained else 'NOT sustained: ' + '; '.join(r.reasons)}", flush=True)
                fails = 0 if r.sustained else fails + 1
                if fails >= opts.stop_after_fail:
                    print(f"stopping: {fails} unsustained steps in a row", flush=True)
                    break
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); cleaned up", file=sys.stderr, flush=True)
        status = 130
    except (HarnessError, Exception) as exc:  # noqa: BLE001 - report (teardown already ran), exit non-zero
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        status = 1
    if results:
        best = max((r.cameras for r in results if r.sustained), default=0)
        meta["max_sustained_cameras"] = best
        print("\n" + table(results))
        print(f"\nlargest sustained step: {best} cameras at {opts.fps:g} fps")
        jpath, cpath = write_results(opts.out, results, meta)
        print(f"wrote {jpath} and {cpath}")
    return status

