#!/usr/bin/env python
"""API read-path cost: /metrics, /overview, group summaries, time series and exports with N cameras.

Usage::

    redis-server --port 6497 --save '' --appendonly no --daemonize yes
    .venv/bin/python load_tests/api_read_costs.py redis://127.0.0.1:6497/0 --cameras 10 50

Each camera gets reader health and 2 faces/s for the last 10 minutes; every path is requested
20 times in-process (FastAPI TestClient, no HTTP server) and the median printed. Writes only keys
under the prefix ``epbench:`` (deleted first): use a scratch redis-server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fastapi.testclient import TestClient  # noqa: E402

from pipeline.api.app import create_app  # noqa: E402
from pipeline.contracts import EmotionResult  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.store.models import CameraConfig  # noqa: E402
from pipeline.store.redis_store import RedisStore  # noqa: E402

PREFIX = "epbench:"
FACES_PER_CAMERA = 1200  # 2 faces/s over 10 minutes


def populate(store: RedisStore, n: int, now: float) -> None:
    for key in store.client.scan_iter(f"{PREFIX}*"):
        store.client.delete(key)
    for i in range(n):
        cid = f"cam{i:03d}"
        store.add_camera(CameraConfig(id=cid, url="rtsp://h/x", groups=["all"]))
        store.set_health(cid, {"state": "live", "fps_in": 25.0, "fps_out": 5.0, "frames_in": 1, "frames_sent": 1,
                               "dropped": 0})
        results = [
            EmotionResult(camera_id=cid, frame_id=k, ts=now - 600 + k * 0.5, face_idx=0, bbox=(0, 0, 9, 9),
                          probs=tuple(1.0 if j == k % 7 else 0.0 for j in range(7)), model="m@1", track_id=None)
            for k in range(FACES_PER_CAMERA)
        ]
        for b in range(0, FACES_PER_CAMERA, 200):
            ids = [f"{int(now * 1000)}-{i * 10000 + k}".encode() for k in range(b, b + 200)]
            store.record_results(results[b:b + 200], ids)


def median_ms(client: TestClient, path: str, reps: int = 20) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("redis_url", help="A scratch Redis (keys under epbench: are deleted).")
    p.add_argument("--cameras", type=int, nargs="+", default=[10, 50], help="Camera counts to measure.")
    args = p.parse_args(argv)
    store = RedisStore.from_url(args.redis_url, prefix=PREFIX)
    client = TestClient(create_app(Settings(redis={"url": args.redis_url}, api={"tokens": ["t"]}), store))
    for n in args.cameras:
        now = time.time()
        print(f"populating {n} cameras ...", flush=True)
        populate(store, n, now)
        week, hour = f"start={int(now - 7 * 86400 + 60)}&end={int(now)}", f"start={int(now - 3600)}&end={int(now)}"
        paths = [
            "/metrics", "/overview?window=1m", "/groups/all/summary?window=5m",
            "/cameras/cam000/timeseries?window=24h", "/cameras/cam000/timeseries?window=10m&step=10s",
            f"/cameras/cam000/export?{week}&step=1m", f"/cameras/cam000/export?{hour}&format=json",
        ]
        print(f"cameras={n}")
        for path in paths:
            route, _, query = path.partition("?")
            print(f"  {route:34s} {query:45s} median {median_ms(client, path):7.1f} ms", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
