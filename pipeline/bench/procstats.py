"""CPU and memory per pipeline stage, from the stack's process tree (psutil).

Ray names its worker processes after what they run (``ray::StreamReader.run``,
``ray::ServeReplica:emotionpipe:FaceDetector``, ``ray::IDLE`` ...), so the processes under the
``emotionpipe up`` process can be grouped into stages without asking Ray. CPU is integrated
from per-process CPU-time deltas between samples, so a worker that changes title, or appears
mid-window, is still counted (a process that dies between samples loses its last interval).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import psutil

#: Stages in display order. ``ray`` is Ray's own machinery (raylet, GCS, idle workers, agents);
#: ``driver`` the ``emotionpipe up`` process; ``rtsp`` the test server (not part of the stack).
STAGES = ("ingest", "detect", "classify", "redis", "api", "serve", "manager", "ray", "driver", "rtsp", "bench")


def stage_of(title: str) -> str:
    """Stage of a stack process from its (Ray-set) title / command line."""
    if "redis-server" in title:
        return "redis"
    if title.startswith("ray::StreamReader"):
        return "ingest"
    if "FaceDetector" in title:
        return "detect"
    if "EmotionClassifier" in title:
        return "classify"
    if "ApiIngress" in title:
        return "api"
    if "CameraManager" in title:
        return "manager"
    if "ServeController" in title or "ProxyActor" in title:
        return "serve"
    return "ray"


class StageSampler:
    """Integrates CPU seconds per stage over a window (``begin`` … ``sample``* … ``end``).

    Args:
        stack_pid: The ``emotionpipe up`` process; its descendants are the stack.
        rtsp_pid: The RTSP test server, reported as its own stage.
        bench_pid: This process, reported as ``bench``.
    """

    def __init__(self, stack_pid: int, rtsp_pid: int | None, bench_pid: int | None = None) -> None:
        self.stack_pid = stack_pid
        self.fixed = {p: s for p, s in ((stack_pid, "driver"), (rtsp_pid, "rtsp"), (bench_pid, "bench")) if p}
        self._last: dict[int, float] = {}
        self._cpu: dict[str, float] = defaultdict(float)
        self._t0 = 0.0
        self._sys0: Any = None
        self._rss: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._others0: dict[int, tuple[str, float]] = {}

    def _procs(self) -> list[tuple[psutil.Process, str]]:
        out = []
        try:
            root = psutil.Process(self.stack_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for pid in self.fixed:
            if pid != self.stack_pid:
                try:
                    procs.append(psutil.Process(pid))
                except psutil.Error:
                    pass
        for p in procs:
            try:
                stage = self.fixed.get(p.pid) or stage_of(" ".join(p.cmdline()) or p.name())
            except psutil.Error:
                continue
            out.append((p, stage))
        return out

    def _scan(self, accumulate: bool) -> None:
        rss: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        seen: dict[int, float] = {}
        for p, stage in self._procs():
            try:
                t = p.cpu_times()
                mem = p.memory_info().rss
            except psutil.Error:
                continue
            total = t.user + t.system
            seen[p.pid] = total
            if accumulate:
                # A process first seen mid-window counts from when it was first seen.
                self._cpu[stage] += max(0.0, total - self._last.get(p.pid, total))
            rss[stage] += mem / 2**20
            count[stage] += 1
        self._last = seen
        self._rss, self._count = dict(rss), dict(count)

    def _all_cpu(self) -> dict[int, tuple[str, float]]:
        out = {}
        for p in psutil.process_iter(["name", "cpu_times"]):
            t = p.info["cpu_times"]
            if t is not None:
                out[p.pid] = (p.info["name"] or "?", t.user + t.system)
        return out

    def begin(self) -> None:
        """Start a window."""
        self._cpu = defaultdict(float)
        self._scan(accumulate=False)
        self._others0 = self._all_cpu()
        self._t0 = time.monotonic()
        self._sys0 = psutil.cpu_times()

    def sample(self) -> None:
        """Integrate CPU since the previous sample (call every ~1-2 s)."""
        self._scan(accumulate=True)

    def running_cpu(self) -> dict[str, float]:
        """CPU % of one core per stage so far in the window."""
        dt = max(1e-6, time.monotonic() - self._t0)
        return {s: 100.0 * v / dt for s, v in self._cpu.items()}

    def end(self) -> dict[str, Any]:
        """Close the window.

        Returns:
            ``cpu`` (% of one core per stage, plus ``other`` = everything else on the machine,
            e.g. concurrent test runs), ``rss_mb`` per stage, ``replicas`` (process count per
            stage) and ``system_cpu_pct`` (whole machine, % of all cores).
        """
        self._scan(accumulate=True)
        dt = max(1e-6, time.monotonic() - self._t0)
        sys1 = psutil.cpu_times()
        busy = sum(getattr(sys1, f) - getattr(self._sys0, f) for f in sys1._fields if f not in ("idle", "iowait"))
        # Guest times are already inside user/nice on Linux; do not count them twice.
        busy -= sum(getattr(sys1, f) - getattr(self._sys0, f) for f in ("guest", "guest_nice") if hasattr(sys1, f))
        ncpu = psutil.cpu_count() or 1
        cpu = {s: round(100.0 * v / dt, 1) for s, v in self._cpu.items()}
        cpu["other"] = round(max(0.0, 100.0 * busy / dt - sum(cpu.values())), 1)
        # Who else used the machine (processes outside the stack alive at both ends of the window).
        ours = set(self._last) | set(self.fixed)
        others = []
        for pid, (name, total) in self._all_cpu().items():
            if pid not in ours and pid in self._others0:
                others.append((100.0 * (total - self._others0[pid][1]) / dt, f"{name}[{pid}]"))
        top_others = {n: round(c, 1) for c, n in sorted(others, reverse=True)[:3] if c >= 1.0}
        return {
            "cpu": cpu,
            "rss_mb": {s: round(v, 1) for s, v in self._rss.items()},
            "replicas": dict(self._count),
            "system_cpu_pct": round(100.0 * busy / dt / ncpu, 1),
            "top_others": top_others,
        }
