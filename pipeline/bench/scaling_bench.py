"""Autoscaling timeline: each deployment scales up under its own load and back down after.

Two loads, one after the other, so the plot shows that the deployments scale independently:

1. **Camera ramp** (detector load): real RTSP cameras are added step by step up to a peak, held,
   then removed down to one. The ``FaceDetector`` scales on ongoing requests.
2. **Face burst** (classifier load): synthetic 48x48 crops are pushed straight onto the faces
   stream at a fixed rate, as a burst of crowded frames would. The ``EmotionClassifier`` scales
   on the consumer group's lag (:mod:`pipeline.classify.autoscale`); the detector sees nothing.

Every second it records frames in/sent/dropped, faces published/classified/refused, the stream
lag, end-to-end latency p50/p95/p99 (over the last 5 s of committed results) and the RUNNING
replicas of each deployment (``serve.status()`` through a second Ray driver). Output: a CSV and
a PNG under ``--out``. Autoscaling delays are shortened for the run (``--set`` overrides them)
and the local Ray cluster advertises 4 logical CPUs so 3+3 replicas can be placed on a 2-core
machine: on such a machine extra replicas show the controller's decisions, not extra throughput.

Run: ``emotionpipe bench scaling`` (about 7 minutes with the defaults).
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bench.harness import HarnessError, LiveStack, percentile, source_videos

DEPLOYMENTS = ("FaceDetector", "EmotionClassifier")
BURST_CAMERA = "bench-burst"
# Short delays so one run shows up- and down-scaling; production defaults are in settings.py.
RUN_DEFAULTS = {
    "EP_RAY__NUM_CPUS": "4",
    "EP_DETECT__MAX_REPLICAS": "3",
    "EP_DETECT__UPSCALE_DELAY_S": "5",
    "EP_DETECT__DOWNSCALE_DELAY_S": "30",
    "EP_CLASSIFY__MAX_REPLICAS": "3",
    "EP_CLASSIFY__TARGET_LAG_PER_REPLICA": "300",
    "EP_CLASSIFY__DOWNSCALE_DELAY_S": "20",
}


@dataclass(frozen=True)
class ScalingOptions:
    """One timeline's settings (the command's options; defaults in :mod:`pipeline.cli.bench`)."""

    steps: tuple[int, ...]  # camera counts of the ramp; the last is the peak
    fps: float  # sampling rate of every camera
    warm: float  # seconds with one camera before the ramp
    step_s: float  # seconds per ramp step
    peak_s: float  # seconds at the peak camera count
    cool_s: float  # seconds after each load (scale-down delay + margin)
    burst_s: float  # seconds of synthetic face burst
    burst_rate: float  # synthetic faces per second during the burst
    mounts: int  # RTSP mounts shared round-robin by the cameras
    out: Path  # where the CSV and PNG go
    videos: tuple[Path, ...] = ()  # source clips; empty = the CREMA-D clips
    overrides: dict[str, str] = field(default_factory=dict)  # EP_* settings, over RUN_DEFAULTS
    keep_data: bool = False  # keep the stack's temporary data dir


@dataclass(frozen=True)
class Phase:
    """A stretch of the timeline with a fixed load."""

    name: str
    cameras: int
    seconds: float
    burst_rate: float = 0.0  # synthetic faces per second pushed onto the stream


def build_plan(opts: ScalingOptions) -> list[Phase]:
    """Warm-up, the camera ramp up to the peak, cool-down, the face burst, cool-down."""
    steps = list(opts.steps)
    phases = [Phase("warm-up", 1, opts.warm)]
    phases += [Phase(f"{n} cams", n, opts.step_s) for n in steps[:-1]]
    phases.append(Phase(f"{steps[-1]} cams", steps[-1], opts.peak_s))
    phases.append(Phase("detector cool-down", 1, opts.cool_s))
    phases.append(Phase("face burst", 1, opts.burst_s, burst_rate=opts.burst_rate))
    phases.append(Phase("classifier cool-down", 1, opts.cool_s))
    return phases


class BurstProducer:
    """Pushes synthetic face crops onto the stream at ``rate`` per second (in 10 Hz batches)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rate = 0.0
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import numpy as np

        from pipeline.contracts import FaceCrop

        rng = np.random.default_rng(0)
        frame_id = 0
        carry = 0.0
        while not self._stop.wait(0.1):
            carry += self.rate * 0.1
            n = int(carry)
            if n <= 0:
                continue
            carry -= n
            now = time.time()
            crops = []
            for i in range(n):
                crops.append(FaceCrop(
                    camera_id=BURST_CAMERA, frame_id=frame_id, ts=now, face_idx=i, bbox=(0, 0, 48, 48),
                    det_score=0.9, crop=rng.integers(0, 256, 48 * 48, dtype=np.uint8).tobytes(),
                    crop_shape=(48, 48),
                ))
            frame_id += 1
            self.sent += self.store.publish_faces(crops)


class ReplicaCounter:
    """RUNNING replicas per deployment, from ``serve.status()`` on the stack's Ray cluster."""

    def __init__(self, ray_address: str) -> None:
        import ray

        ray.init(address=ray_address, namespace="emotionpipe", logging_level=logging.ERROR, log_to_driver=False)

    def counts(self) -> dict[str, int]:
        from ray import serve

        from pipeline.serve_app import APP_NAME

        try:
            app = serve.status().applications.get(APP_NAME)
        except Exception:  # noqa: BLE001 - a missed sample is a gap in the plot, not a failed run
            return {}
        if app is None:
            return {}
        # replica_states is keyed by a str enum (ReplicaState, private to Serve): compare as strings.
        return {name: sum(n for state, n in app.deployments[name].replica_states.items() if state == "RUNNING")
                for name in DEPLOYMENTS if name in app.deployments}

    def close(self) -> None:
        import ray

        ray.shutdown()


class Timeline:
    """Samples the whole pipeline once per call; rates are per second since the previous call."""

    def __init__(self, live: LiveStack, replicas: ReplicaCounter, burst: BurstProducer) -> None:
        self.live = live
        self.store = live.store
        self.replicas = replicas
        self.burst = burst
        self.cameras: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._prev: dict[str, Any] | None = None
        self._t0 = time.time()

    def _totals(self) -> dict[str, Any]:
        health = {c: self.store.get_health(c) for c in self.cameras}
        scopes = [*self.cameras, BURST_CAMERA]
        counters = {c: self.store.get_counters(c) for c in scopes}
        server = self.store.server_stats()
        return {
            "t": time.time(),
            "health": health,
            "published": {c: v.get("published", 0) for c, v in counters.items()},
            "refused": sum(v.get("refused", 0) for v in counters.values()),
            "lag": self.store.queue_lag(),
            # Redis load per face, for sizing shards (the 1,000-camera plan in the README).
            "redis_cmds": server["commands_processed"],
            "redis_mem": server["used_memory"],
        }

    def sample(self, phase: Phase) -> dict[str, Any]:
        cur = self._totals()
        latencies = [v for v in self.store.latency_samples(None, since=cur["t"] - 5.0) if v >= 0]
        row: dict[str, Any] = {"t_s": round(cur["t"] - self._t0, 1), "phase": phase.name,
                               "cameras": len(self.cameras), "burst_rate": phase.burst_rate}
        prev = self._prev
        dt = cur["t"] - prev["t"] if prev else 0.0
        for key in ("frames_in", "frames_sent", "dropped"):
            if prev and dt > 0:
                # Only cameras present in both samples: a removed camera's counters vanish.
                common = [c for c in cur["health"] if c in prev["health"]]
                total = sum(int(cur["health"][c].get(key, 0)) - int(prev["health"][c].get(key, 0)) for c in common)
                row[f"{key}_per_s"] = round(max(total, 0) / dt, 2)
            else:
                row[f"{key}_per_s"] = 0.0
        published = classified = 0.0
        if prev and dt > 0:
            # A removed camera's counters vanish with it: count only scopes present in both samples.
            new_faces = sum(n - prev["published"][c] for c, n in cur["published"].items() if c in prev["published"])
            published = new_faces / dt
            # Classified = published minus what the backlog grew by.
            classified = (new_faces - (cur["lag"] - prev["lag"])) / dt
        row.update({
            "faces_published_per_s": round(published, 1),
            "faces_classified_per_s": round(max(classified, 0.0), 1),
            "faces_refused": cur["refused"],
            "queue_lag": cur["lag"],
            "redis_cmds_per_s": round((cur["redis_cmds"] - prev["redis_cmds"]) / dt) if prev and dt > 0 else 0,
            "redis_used_mb": round(cur["redis_mem"] / 2**20, 1),
            "latency_p50_s": percentile(latencies, 50),
            "latency_p95_s": percentile(latencies, 95),
            "latency_p99_s": percentile(latencies, 99),
        })
        counts = self.replicas.counts()
        for name in DEPLOYMENTS:
            row[f"replicas_{name}"] = counts.get(name)
        self._prev = cur
        self.rows.append(row)
        return row


def set_cameras(live: LiveStack, timeline: Timeline, n: int, fps: float) -> None:
    while len(timeline.cameras) < n:
        i = len(timeline.cameras)
        cam = f"bench-{i:02d}"
        live.add_camera(cam, live.camera_url(i), fps)
        timeline.cameras.append(cam)
    while len(timeline.cameras) > n:
        live.remove_camera(timeline.cameras.pop())


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    ax = axes[0]
    ax.step(t, [r["cameras"] for r in rows], where="post", color="black", label="cameras")
    ax.set_ylabel("cameras")
    ax2 = ax.twinx()
    ax2.plot(t, [r["faces_published_per_s"] for r in rows], color="tab:orange", lw=0.8, label="faces published/s")
    ax2.plot(t, [r["faces_classified_per_s"] for r in rows], color="tab:green", lw=0.8, label="faces classified/s")
    ax2.set_ylabel("faces/s")
    ax2.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    for name, color in zip(DEPLOYMENTS, ("tab:blue", "tab:red")):
        ys = [r[f"replicas_{name}"] if r[f"replicas_{name}"] is not None else float("nan") for r in rows]
        ax.step(t, ys, where="post", color=color, lw=2, label=name)
    ax.set_ylabel("RUNNING replicas")
    ax.legend(loc="upper left", fontsize=8)
    axes[2].plot(t, [r["queue_lag"] for r in rows], color="tab:purple")
    axes[2].set_ylabel("faces stream lag")
    ax = axes[3]
    for key, color in (("latency_p50_s", "tab:green"), ("latency_p95_s", "tab:orange"), ("latency_p99_s", "tab:red")):
        ax.plot(t, [r[key] if r[key] is not None else float("nan") for r in rows], color=color, lw=0.8,
                label=key.split("_")[1])
    ax.set_ylabel("end-to-end latency (s)")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("seconds")
    # Phase boundaries and names on every panel.
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["phase"] != rows[start]["phase"]:
            for a in axes:
                a.axvline(t[start], color="grey", lw=0.5, ls=":")
            axes[0].text(t[start], 1.02, rows[start]["phase"], transform=axes[0].get_xaxis_transform(),
                         fontsize=7, rotation=20)
            start = i
    fig.suptitle(title, y=0.995, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_timeline(opts: ScalingOptions) -> int:
    """Run the timeline, then write the CSV and PNG and print the per-phase table.

    Returns:
        The exit status: 0 on success, 1 on errors, 130 when interrupted (Ctrl-C, SIGTERM).
    """
    try:
        videos = source_videos(list(opts.videos), opts.mounts)
    except HarnessError as exc:
        print(exc, file=sys.stderr)
        return 1
    overrides = {**RUN_DEFAULTS, **opts.overrides}
    phases = build_plan(opts)
    total = sum(p.seconds for p in phases)
    print(f"plan ({total:.0f} s): " + ", ".join(f"{p.name} {p.seconds:.0f}s" for p in phases), flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    timeline: Timeline | None = None
    status = 0
    try:
        with LiveStack(videos, overrides, keep_data=opts.keep_data) as live:
            replicas = ReplicaCounter(live.state.ray_address)
            burst = BurstProducer(live.store)
            burst.start()
            try:
                timeline = Timeline(live, replicas, burst)
                t_run = time.monotonic()
                for phase in phases:
                    set_cameras(live, timeline, phase.cameras, opts.fps)
                    burst.rate = phase.burst_rate
                    end = time.monotonic() + phase.seconds
                    next_tick = time.monotonic()
                    while time.monotonic() < end:
                        next_tick += 1.0
                        time.sleep(max(0.0, next_tick - time.monotonic()))
                        row = timeline.sample(phase)
                        if int(row["t_s"]) % 10 == 0:
                            p95 = row["latency_p95_s"]
                            print(f"[{time.monotonic() - t_run:5.0f}/{total:.0f}s] {phase.name:<20} "
                                  f"cams {row['cameras']} sent {row['frames_sent_per_s']:5.1f}/s "
                                  f"faces {row['faces_classified_per_s']:6.1f}/s lag {row['queue_lag']:6d} "
                                  f"p95 {'-' if p95 is None else f'{p95:.2f}s'} replicas det "
                                  f"{row['replicas_FaceDetector']} cls {row['replicas_EmotionClassifier']}",
                                  flush=True)
            finally:
                burst.stop()
                replicas.close()
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); cleaned up", file=sys.stderr, flush=True)
        status = 130
    except (HarnessError, Exception) as exc:  # noqa: BLE001 - report (teardown already ran), exit non-zero
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        status = 1
    if timeline is not None and timeline.rows:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        csv_path, png_path = opts.out / f"scaling-{stamp}.csv", opts.out / f"scaling-{stamp}.png"
        write_csv(csv_path, timeline.rows)
        plot(png_path, timeline.rows, f"emotion-pipeline autoscaling on {os.cpu_count()} cores: "
             f"camera ramp (detector) then face burst (classifier)")
        print(summarize(timeline.rows))
        print(f"wrote {csv_path} and {png_path}")
    return status


def _span(values: list[Any]) -> str:
    """first→max→last of a replica count over a phase."""
    vals = [v for v in values if v is not None]
    return f"{vals[0]}→{max(vals)}→{vals[-1]}" if vals else "-"


def summarize(rows: list[dict[str, Any]]) -> str:
    """Per-phase table: load, throughput, lag, latency, replicas first→max→last (README-ready)."""
    lines = ["| phase | cams | sent fps | faces/s | lag max | p95 s (max) | detector replicas | classifier replicas |",
             "|---|---|---|---|---|---|---|---|"]
    phases: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        phases.setdefault(r["phase"], []).append(r)
    for name, rs in phases.items():
        p95 = [r["latency_p95_s"] for r in rs if r["latency_p95_s"] is not None]
        sent = sum(r["frames_sent_per_s"] for r in rs) / len(rs)
        faces = sum(r["faces_classified_per_s"] for r in rs) / len(rs)
        p95_max = f"{max(p95):.2f}" if p95 else "-"
        lines.append(
            f"| {name} | {rs[0]['cameras']} | {sent:.1f} | {faces:.0f} | {max(r['queue_lag'] for r in rs)} | "
            f"{p95_max} | {_span([r['replicas_FaceDetector'] for r in rs])} | "
            f"{_span([r['replicas_EmotionClassifier'] for r in rs])} |"
        )
    return "\n".join(lines)

