#!/usr/bin/env python
"""Overload test: 4x more cameras than the machine sustains, then back to normal.

``.venv/bin/python load_tests/overload.py [--cameras 24] [--hold 300] [--recover-cameras 2] [--recover 150]``

Starts the real local stack and simulated RTSP cameras (:class:`pipeline.bench.harness.LiveStack`:
pre-encoded clips passed through the GStreamer RTSP test server, ``emotionpipe up --detach``),
registers ``--cameras`` cameras at ``--fps`` (the laptop stack sustains about 6 at 5 fps on 2
cores, see the pipeline benchmark), holds them for ``--hold`` seconds, then removes all but
``--recover-cameras`` and watches the system recover. Every ``--interval`` seconds it records:
RSS and CPU of each stage, end-to-end latency p50/p95 of the faces committed in the interval,
frames dropped by the readers, faces refused by the producer, faces published and classified,
stream length, pending entries and lag.

Checks (exit 1 if one fails): RSS of every stage bounded (last minute of overload vs the first
after warm-up), stream length never above ``classify.stream_maxlen`` (refuse, don't trim),
lag back to ~0 after the load drops, latency back to normal, and every face accepted into the
stream acknowledged: ``published == classified + dead-lettered`` once the backlog is empty.
Not part of CI: it needs ~10 minutes and a quiet machine. Results: CSV under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pipeline.bench.harness import HarnessError, LiveStack, parse_overrides, percentile, source_videos
from pipeline.bench.procstats import StageSampler
from pipeline.store.keys import GLOBAL_SCOPE

STAGES = ("ingest", "detect", "classify", "redis", "api", "manager", "serve", "ray", "driver")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cameras", type=int, default=24, help="Cameras during the overload (4x capacity).")
    p.add_argument("--fps", type=float, default=5.0, help="Sampling rate of every camera.")
    p.add_argument("--hold", type=float, default=300.0, help="Seconds of overload.")
    p.add_argument("--recover-cameras", type=int, default=2, help="Cameras kept after the overload.")
    p.add_argument("--recover", type=float, default=150.0, help="Seconds watched after the load drops.")
    p.add_argument("--interval", type=float, default=5.0, help="Sampling period, seconds.")
    p.add_argument("--warmup", type=float, default=60.0, help="Overload seconds excluded from the RSS baseline.")
    p.add_argument("--mounts", type=int, default=6, help="RTSP mounts shared round-robin by the cameras.")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--video", action="append", type=Path, help="Source video(s); default the CREMA-D clips.")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="Settings override without the EP_ prefix, e.g. detect__threads=2 (repeatable).")
    p.add_argument("--keep-data", action="store_true", help="Keep the stack's temporary data dir (logs, AOF).")
    return p.parse_args(argv)


class Recorder:
    """Samples the stack every interval and keeps the rows."""

    def __init__(self, live: LiveStack, sampler: StageSampler, interval: float) -> None:
        self.live = live
        self.store = live.store
        self.sampler = sampler
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.ever: set[str] = set()  # every camera id registered, for totals after removal
        self.last_health: dict[str, dict[str, Any]] = {}
        self.t0 = time.monotonic()
        self._prev_wall = time.time()
        self._prev: dict[str, float] = {}

    def totals(self) -> dict[str, int]:
        out = {"published": 0, "refused": 0, "classified": 0}
        for cid in self.ever:
            counters = self.store.get_counters(cid)
            for name in out:
                out[name] += int(counters.get(name, 0))
        out["dead_letter"] = int(self.store.get_counters(GLOBAL_SCOPE).get("dead_letter", 0))
        return out

    def sample(self, phase: str, cameras: list[str]) -> dict[str, Any]:
        window = self.sampler.end()
        self.sampler.begin()
        now_wall = time.time()
        for cid in cameras:
            h = self.store.get_health(cid)
            if h:
                self.last_health[cid] = h
        dropped = sum(int(h.get("dropped", 0)) for h in self.last_health.values())
        sent = sum(int(h.get("frames_sent", 0)) for h in self.last_health.values())
        live = sum(1 for c in cameras if self.last_health.get(c, {}).get("state") == "live")
        lat = self.store.latency_samples(None, since=self._prev_wall)
        q = self.store.queue_stats()
        tot = self.totals()
        dt = max(1e-6, now_wall - self._prev_wall)

        def rate(name: str, value: float) -> float:
            prev = self._prev.get(name, value)
            self._prev[name] = value
            return round((value - prev) / dt, 2)

        row: dict[str, Any] = {
            "t_s": round(time.monotonic() - self.t0, 1),
            "phase": phase,
            "cameras": len(cameras),
            "live": live,
            "latency_n": len(lat),
            "latency_p50_s": _r(percentile(lat, 50)),
            "latency_p95_s": _r(percentile(lat, 95)),
            "latency_max_s": _r(max(lat) if lat else None),
            "frames_sent_per_s": rate("sent", sent),
            "dropped_per_s": rate("dropped", dropped),
            "dropped_total": dropped,
            "published_per_s": rate("published", tot["published"]),
            "classified_per_s": rate("classified", tot["classified"]),
            "refused_per_s": rate("refused", tot["refused"]),
            **{f"{k}_total": v for k, v in tot.items()},
            "stream_length": q["length"],
            "pending": q["pending"],
            "lag": q["lag"],
            "rss_total_mb": round(sum(window["rss_mb"].values()) - window["rss_mb"].get("rtsp", 0)
                                  - window["rss_mb"].get("bench", 0), 1),
            **{f"rss_{s}_mb": window["rss_mb"].get(s, 0.0) for s in STAGES},
            **{f"cpu_{s}_pct": window["cpu"].get(s, 0.0) for s in (*STAGES, "other")},
            "system_cpu_pct": window["system_cpu_pct"],
        }
        self._prev_wall = now_wall
        self.rows.append(row)
        p95 = "-" if row["latency_p95_s"] is None else f"{row['latency_p95_s']:.2f}"
        print(f"[{row['t_s']:6.1f}s {phase:8s}] cams {len(cameras):2d} live {live:2d} | sent {row['frames_sent_per_s']:6.1f}/s "
              f"drop {row['dropped_per_s']:6.1f}/s | faces pub {row['published_per_s']:6.1f}/s cls "
              f"{row['classified_per_s']:6.1f}/s refused {row['refused_per_s']:6.1f}/s | len {q['length']:5d} "
              f"pend {q['pending']:4d} lag {q['lag']:5d} | p95 {p95}s | RSS {row['rss_total_mb']:.0f} MB "
              f"(ingest {row['rss_ingest_mb']:.0f}, detect {row['rss_detect_mb']:.0f}, classify "
              f"{row['rss_classify_mb']:.0f}, redis {row['rss_redis_mb']:.0f})", flush=True)
        return row

    def hold(self, phase: str, cameras: list[str], seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(max(0.0, min(self.interval, end - time.monotonic())))
            self.sample(phase, cameras)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def check(rows: list[dict[str, Any]], args: argparse.Namespace, maxlen: int, final: dict[str, int]) -> list[str]:
    """The pass/fail findings; an empty list means every check passed."""
    failures: list[str] = []
    over = [r for r in rows if r["phase"] == "overload"]
    rec = [r for r in rows if r["phase"] == "recover"]
    base = [r for r in over if r["t_s"] - over[0]["t_s"] >= args.warmup][: max(1, int(60 / args.interval))]
    last = over[-max(1, int(60 / args.interval)):]
    for stage in ("ingest", "detect", "classify", "redis", "total"):
        key = f"rss_{stage}_mb"
        b = max(r[key] for r in base) if base else 0
        e = max(r[key] for r in last) if last else 0
        growth = (e - b) / b if b else 0.0
        print(f"RSS {stage:8s}: {b:7.0f} MB after warm-up -> {e:7.0f} MB at the end of the overload ({growth:+.0%})")
        if b and growth > 0.25:
            failures.append(f"RSS of {stage} grew {growth:+.0%} during the overload")
    too_long = [r["stream_length"] for r in rows if r["stream_length"] > maxlen + 64 * 4]
    if too_long:
        failures.append(f"stream length above stream_maxlen ({maxlen}): {max(too_long)}")
    if not rec or rec[-1]["lag"] + rec[-1]["pending"] > 10:
        failures.append(f"lag did not return to ~0: {rec[-1] if rec else None}")
    p95s = [r["latency_p95_s"] for r in rec[-6:] if r["latency_p95_s"] is not None]
    if not p95s or max(p95s) > 2.0:
        failures.append(f"latency p95 after recovery not back under 2 s: {p95s}")
    if final["published"] != final["classified"] + final["dead_letter"]:
        failures.append(
            f"accepted faces not all accounted for: published {final['published']} != classified "
            f"{final['classified']} + dead-lettered {final['dead_letter']}"
        )
    return failures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        videos = source_videos(args.video, args.mounts)
    except HarnessError as exc:
        print(exc, file=sys.stderr)
        return 1
    overrides = parse_overrides(args.set)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"overload_{stamp}.csv"
    with LiveStack(videos, overrides, keep_data=args.keep_data) as live:
        maxlen = int(live.settings.classify.stream_maxlen)
        sampler = StageSampler(live.state.pid, live.rtsp.pid if live.rtsp else None)
        sampler.begin()
        rec = Recorder(live, sampler, args.interval)
        cams = [f"ov{i:02d}" for i in range(args.cameras)]
        print(f"overload: registering {len(cams)} cameras at {args.fps:g} fps ...", flush=True)
        for i, cid in enumerate(cams):
            live.add_camera(cid, live.camera_url(i), args.fps)
            rec.ever.add(cid)
        rec.hold("overload", cams, args.hold)
        keep = cams[: args.recover_cameras]
        print(f"load drops: removing {len(cams) - len(keep)} cameras, keeping {keep}", flush=True)
        for cid in cams[len(keep):]:
            live.remove_camera(cid)
        rec.hold("recover", keep, args.recover)
        # Accounting needs an empty backlog: give the classifier a bounded time to finish.
        deadline = time.monotonic() + 120
        while live.store.queue_lag() > 0 and time.monotonic() < deadline:
            time.sleep(1.0)
        for cid in keep:
            live.remove_camera(cid)
        deadline = time.monotonic() + 60
        while live.store.queue_lag() > 0 and time.monotonic() < deadline:
            time.sleep(1.0)
        time.sleep(2.0)  # in-flight detections of the last frames
        final = rec.totals()
        q = live.store.queue_stats()
        rows = rec.rows
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    over = [r for r in rows if r["phase"] == "overload"]
    lat95 = [r["latency_p95_s"] for r in over if r["latency_p95_s"] is not None]
    print(f"\nfinal: {final}; queue {q}")
    print(f"overload: p95 latency per interval median {percentile(lat95, 50)} s, max {max(lat95, default=None)} s; "
          f"dropped {over[-1]['dropped_total'] if over else 0} frames; refused {final['refused']} faces")
    failures = check(rows, args, maxlen, final)
    for message in failures:
        print(f"CHECK FAILED: {message}")
    print(f"wrote {out}; {'all checks passed' if not failures else f'{len(failures)} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
