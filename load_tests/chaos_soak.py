#!/usr/bin/env python
"""Chaos soak on the container cluster: steady camera load, a random fault every few minutes.

``.venv/bin/python load_tests/chaos_soak.py [--minutes 30] [--cameras 4] [--fps 5] [--fault-every 180]``

Starts the multi-node cluster of containers (``deploy/containers.py up``: Redis with AOF, a Ray
head and two Ray workers, serve-cluster.yaml), cameras on the host's RTSP test server (CREMA-D
clips, one face in every frame), and every ``--fault-every`` seconds (jittered) injects one of these,
in random order but each once per round of four (a plain random pick can leave a kind out of a run):

* ``worker``: a Ray worker container killed (``podman kill``), a fresh one started 20 s later;
* ``redis``: the Redis container restarted;
* ``rtsp``: the RTSP server killed and restarted (every camera drops at once);
* ``classifier``: the EmotionClassifier replica's actor killed (Serve replaces it).

Recovery time of a fault: until every camera has a classified face *captured after* the fault
(results of frames already in flight do not count). Latency: end-to-end (capture -> aggregate
committed) samples polled every few seconds; p95 reported outside fault windows (fault start to
recovery + 10 s). At the end the cameras are paused and the queue drained, and the accounting
must close: faces published = classified + dead-lettered. USS of every process in every
container at the start and the end. Prints a table; CSV/JSON under ``--out``.
Not part of CI (30+ minutes); run it on a quiet machine, nothing else heavy beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import httpx  # noqa: E402
import psutil  # noqa: E402

from pipeline.bench.camera_sim import RtspServer  # noqa: E402
from pipeline.bench.harness import free_port, percentile  # noqa: E402
from pipeline.store.redis_store import RedisStore  # noqa: E402

_spec = importlib.util.spec_from_file_location("containers", REPO / "deploy" / "containers.py")
assert _spec is not None and _spec.loader is not None
containers = importlib.util.module_from_spec(_spec)
sys.modules["containers"] = containers  # dataclasses look their module up while it executes
_spec.loader.exec_module(containers)

FAULTS = ("worker", "redis", "rtsp", "classifier")
CLIPS = ("1001_DFA_HAP_XX.mp4", "1001_DFA_NEU_XX.mp4", "1001_DFA_ANG_XX.mp4")


@dataclass
class Fault:
    kind: str
    start: float
    detail: str = ""
    recovered: float | None = None

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else round(self.recovered - self.start, 1)


@dataclass
class Soak:
    faults: list[Fault] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (poll time, latency s)
    cpu: list[float] = field(default_factory=list)  # machine CPU %, one sample per poll
    seconds: float = 0.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--cameras", type=int, default=4, help="cameras (~80%% of what the cluster sustains)")
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--fault-every", type=float, default=180.0, help="mean seconds between faults")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the first fault")
    p.add_argument("--cooldown", type=float, default=150.0, help="no new fault in the last seconds")
    p.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media" / "video" / "cremad")
    p.add_argument("--faults", default=",".join(FAULTS), help=f"kinds to inject, comma-separated ({','.join(FAULTS)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "load_tests" / "results")
    return p.parse_args(argv)


def container_uss() -> list[dict[str, Any]]:
    """USS (MB) of every process of every cluster container, seen from the host."""
    rows = []
    for node in (containers.REDIS, containers.HEAD, *containers.WORKERS):
        try:
            pid = int(containers.podman("inspect", "-f", "{{.State.Pid}}", node.name, capture=True).strip())
            root = psutil.Process(pid)
        except (containers.PodmanError, ValueError, psutil.Error):
            continue
        for proc in [root, *root.children(recursive=True)]:
            try:
                title = " ".join(proc.cmdline())[:60] or proc.name()
                rows.append({"container": node.name, "pid": proc.pid, "process": title,
                             "uss_mb": round(proc.memory_full_info().uss / 2**20, 1)})
            except psutil.Error:
                continue
    return rows


def kill_classifier_replica() -> str:
    code = (
        "import ray; from ray.util.state import list_actors; ray.init(address='auto', logging_level='ERROR')\n"
        "names = [a.name for a in list_actors(filters=[('state', '=', 'ALIVE')], limit=1000)"
        " if a.class_name.endswith('EmotionClassifier')]\n"
        "ray.kill(ray.get_actor(names[0], namespace='serve'), no_restart=True); print(names[0])"
    )
    return containers.podman("exec", containers.HEAD.name, "python", "-c", code, capture=True, timeout=60).strip()


def inject(kind: str, rtsp: RtspServer, rng: random.Random) -> str:
    if kind == "worker":
        node = rng.choice(containers.WORKERS)
        containers.podman("kill", node.name, capture=True)
        return node.name
    if kind == "redis":
        containers.podman("restart", "-t", "5", containers.REDIS.name, capture=True)
        return containers.REDIS.name
    if kind == "rtsp":
        rtsp.restart()
        return f"pid {rtsp.pid}"
    return kill_classifier_replica()


def recovered(store: RedisStore, cameras: list[str], since: float) -> bool:
    try:
        return all((store.newest_result_ts(c) or 0.0) > since for c in cameras)
    except Exception:  # noqa: BLE001 - Redis itself may be the fault being recovered from
        return False


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    kinds = [k for k in args.faults.split(",") if k]
    if not kinds or set(kinds) - set(FAULTS):
        raise SystemExit(f"--faults takes some of {','.join(FAULTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not containers.image_is_current():
        containers.build_image(containers.BASE_IMAGE, "")
    state = containers.cluster_up(free_port())
    clips = {f"cam-{i}": args.media / CLIPS[i % len(CLIPS)] for i in range(args.cameras)}
    log = Path(tempfile.mkdtemp(prefix="ep-chaos-")) / "rtsp.log"
    rtsp = RtspServer(free_port(), clips, log, host=containers.GATEWAY)
    rtsp.start()
    store = RedisStore.from_url(f"redis://:{state['redis_password']}@{containers.REDIS.ip}:6379/0")
    api = httpx.Client(base_url=state["api_url"], timeout=10, headers={"Authorization": f"Bearer {state['token']}"})
    soak = Soak()
    try:
        for cam in clips:
            api.post("/cameras", json={"id": cam, "url": rtsp.url(cam), "fps": args.fps}).raise_for_status()
        t0 = time.time()
        print(f"{len(clips)} cameras at {args.fps:g} fps; warming up {args.warmup:.0f} s", flush=True)
        while not recovered(store, list(clips), t0):
            time.sleep(2)
        uss_start = container_uss()
        end = t0 + args.warmup + args.minutes * 60
        next_fault = t0 + args.warmup
        last_poll = time.time()
        soak_start = last_poll
        psutil.cpu_percent()
        worker_down: tuple[float, Any] | None = None
        bag: list[str] = []
        while time.time() < end:
            time.sleep(2)
            now = time.time()
            soak.cpu.append(psutil.cpu_percent())
            try:
                soak.latencies += [(now, v) for v in store.latency_samples(since=last_poll)]
                last_poll = now
            except Exception:  # noqa: BLE001 - Redis restarting: poll again later
                pass
            open_fault = soak.faults[-1] if soak.faults and soak.faults[-1].recovered is None else None
            if open_fault and recovered(store, list(clips), open_fault.start):
                open_fault.recovered = now
                print(f"  {open_fault.kind} recovered in {open_fault.recovery_s} s", flush=True)
            if worker_down and now - worker_down[0] >= 20:
                containers.start_worker(worker_down[1])
                worker_down = None
            if next_fault <= now < end - args.cooldown and open_fault is None and worker_down is None:
                if not bag:
                    bag = rng.sample(kinds, len(kinds))
                kind = bag.pop()
                fault = Fault(kind, time.time())
                fault.detail = inject(kind, rtsp, rng)
                soak.faults.append(fault)
                if kind == "worker":
                    worker_down = (now, next(w for w in containers.WORKERS if w.name == fault.detail))
                print(f"[{(now - t0) / 60:5.1f} min] fault {kind} ({fault.detail})", flush=True)
                next_fault = now + rng.uniform(0.7, 1.3) * args.fault_every
        soak.seconds = time.time() - soak_start
        uss_end = container_uss()
        for cam in clips:
            api.post(f"/cameras/{cam}/pause").raise_for_status()
        deadline = time.time() + 180
        while time.time() < deadline and store.queue_lag() > 0:
            time.sleep(2)
        time.sleep(3)
        counters = [store.get_counters(c) for c in clips]
        totals = {k: sum(c.get(k, 0) for c in counters) for k in ("published", "classified", "dead_letter")}
        queue = store.queue_stats()
        print(f"queue after drain: {queue}", flush=True)
        return report(args, soak, totals, uss_start, uss_end, queue["lag"] + queue["pending"])
    finally:
        api.close()
        store.close()
        rtsp.stop()
        containers.cluster_down()


def report(args: argparse.Namespace, soak: Soak, totals: dict[str, int], uss_start: list[dict[str, Any]],
           uss_end: list[dict[str, Any]], lag: int) -> int:
    windows = [(f.start, (f.recovered or f.start + 600) + 10) for f in soak.faults]
    steady = [v for t, v in soak.latencies if not any(a <= t <= b for a, b in windows)]
    by_kind: dict[str, list[float | None]] = {}
    for f in soak.faults:
        by_kind.setdefault(f.kind, []).append(f.recovery_s)
    closed = totals["published"] == totals["classified"] + totals["dead_letter"] and lag == 0
    print(f"\nchaos soak: {args.minutes:g} min, {args.cameras} cameras at {args.fps:g} fps, {len(soak.faults)} faults")
    print(f"faces published {totals['published']} = classified {totals['classified']} + dead-lettered "
          f"{totals['dead_letter']}: {'yes' if closed else 'NO'} (lag after drain {lag})")
    for kind, values in sorted(by_kind.items()):
        done = [v for v in values if v is not None]
        print(f"  {kind:<10} x{len(values)}  max recovery {max(done) if done else '-'} s"
              f"{'' if len(done) == len(values) else f'  ({len(values) - len(done)} not recovered)'}")
    p95 = percentile(steady, 95)
    cpu = sum(soak.cpu) / max(len(soak.cpu), 1)
    per_camera = totals["classified"] / max(args.cameras, 1) / max(soak.seconds + args.warmup, 1)
    print(f"machine CPU mean {cpu:.0f} %; {per_camera:.2f} faces/s classified per camera (asked {args.fps:g} fps)")
    print(f"latency outside fault windows: p50 {percentile(steady, 50)} s, p95 {p95} s ({len(steady)} samples)")
    start = {(r["container"], r["process"]): r["uss_mb"] for r in uss_start}
    print(f"\n{'container':<13}{'process':<62}{'USS start MB':>13}{'end MB':>9}")
    for r in uss_end:
        print(f"{r['container']:<13}{r['process']:<62}{start.get((r['container'], r['process']), '-')!s:>13}"
              f"{r['uss_mb']:>9}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"chaos-soak-{stamp}.json").write_text(json.dumps({
        "minutes": args.minutes, "cameras": args.cameras, "fps": args.fps, "totals": totals, "closed": closed,
        "faults": [{**asdict(f), "recovery_s": f.recovery_s} for f in soak.faults],
        "latency_p95_steady_s": p95, "latency_samples": len(steady), "cpu_mean_percent": round(cpu, 1),
        "faces_per_s_per_camera": round(per_camera, 2), "uss_start": uss_start, "uss_end": uss_end,
    }, indent=1))
    return 0 if closed and all(f.recovered is not None for f in soak.faults) else 1


if __name__ == "__main__":
    raise SystemExit(run(parse_args(sys.argv[1:])))
