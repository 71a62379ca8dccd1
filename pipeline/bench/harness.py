"""The live stack + simulated cameras as one context manager, shared by the live benchmarks.

``LiveStack`` starts the GStreamer RTSP test server (pre-encoded clips passed through, so the
simulator costs the machine under test almost nothing), then ``emotionpipe up --detach`` on its
own ports and temporary data dir, waits for readiness and tears everything down on exit, on
errors and on Ctrl-C. Settings overrides travel to the stack as ``EP_*`` environment variables.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.bench.camera_sim import RtspServer, transcode_for_passthrough

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MEDIA = REPO.parent / "shared" / "media" / "video" / "cremad"


class HarnessError(RuntimeError):
    """The benchmark's components could not be prepared or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``section__field=value`` items (``--set``) as ``EP_SECTION__FIELD`` env vars."""
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise HarnessError(f"--set needs KEY=VALUE, got {item!r}")
        env["EP_" + key.upper()] = value
    return env


def source_videos(videos: list[Path] | None, mounts: int) -> list[Path]:
    """One clip per RTSP mount, cycling through ``videos`` (default: the CREMA-D clips).

    Raises:
        HarnessError: No clip, or one that is not a file.
    """
    clips = videos or sorted(DEFAULT_MEDIA.glob("*.mp4"))
    if not clips or not all(v.is_file() for v in clips):
        raise HarnessError(f"no source videos found ({clips or DEFAULT_MEDIA})")
    return [clips[i % len(clips)] for i in range(max(1, mounts))]


class LiveStack:
    """Simulated RTSP cameras + a detached local stack, for the duration of a ``with`` block.

    Args:
        videos: Source clips, one per RTSP mount (cameras share mounts round-robin).
        overrides: Extra ``EP_*`` environment for the stack (settings overrides).
        server_encode: Let the RTSP server re-encode instead of passing packets through.
        keep_data: Keep the temporary data dir (logs, Redis AOF) after the run.
    """

    def __init__(
        self, videos: list[Path], overrides: dict[str, str], *, server_encode: bool = False, keep_data: bool = False
    ) -> None:
        self.videos = videos
        self.server_encode = server_encode
        self.keep_data = keep_data
        self.workdir = Path(tempfile.mkdtemp(prefix="ep-bench-"))
        self.env = {
            "EP_DATA_DIR": str(self.workdir / "data"),
            "EP_API__PORT": str(free_port()),
            "EP_REDIS__EMBEDDED_PORT": str(free_port()),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # The simulated cameras are served on loopback, which the SSRF policy refuses by default.
            "EP_INGEST__ALLOW_LOOPBACK": "true",
            **overrides,
        }
        self.settings: Any = None
        self.rtsp: RtspServer | None = None
        self.state: Any = None
        self.store: Any = None
        self.auth: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LiveStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        import httpx

        # The stack subprocess reads its settings from the environment.
        os.environ.update(self.env)
        from pipeline.runtime import stack
        from pipeline.settings import load_settings
        from pipeline.store.redis_store import RedisStore

        self.settings = load_settings()
        videos = self.videos
        if not self.server_encode:
            print(f"pre-encoding {len(set(videos))} video(s) to 640x480 H.264 for pass-through ...", flush=True)
            encoded = {v: transcode_for_passthrough(v, self.workdir / "media") for v in set(videos)}
            videos = [encoded[v] for v in videos]
        mounts = {f"m{i}": video for i, video in enumerate(videos)}
        self.rtsp = RtspServer(free_port(), mounts, self.workdir / "rtsp.log", passthrough=not self.server_encode)
        t0 = time.monotonic()
        self.rtsp.start()
        print(f"RTSP server on :{self.rtsp.port} ({len(mounts)} mounts); starting the stack ...", flush=True)
        self.state = stack.start_detached(self.settings, ["up", "--no-demo"])
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.api}/readyz", timeout=3.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError("API not ready within 120 s")
            time.sleep(0.5)
        print(f"stack up in {time.monotonic() - t0:.1f}s (pid {self.state.pid}, {self.api}); "
              f"load {os.getloadavg()}", flush=True)
        self.store = RedisStore.from_url(self.state.redis_url, self.settings.redis.prefix)
        if self.state.token_file:
            self.auth = {"Authorization": f"Bearer {Path(self.state.token_file).read_text().split()[0]}"}

    def close(self) -> None:
        """Tear down in reverse order; every step runs, a second Ctrl-C cannot skip it."""
        import signal

        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if self.store is not None:
                self.store.close()
                self.store = None
            if self.settings is not None:
                from pipeline.runtime import stack

                try:
                    stack.down(self.settings)
                except Exception as exc:  # noqa: BLE001 - keep tearing down
                    print(f"stack down failed: {exc}", file=sys.stderr)
                self.settings = None
            if self.rtsp is not None:
                self.rtsp.stop()
                self.rtsp = None
            if self.keep_data:
                print(f"kept {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)

    # -- helpers -----------------------------------------------------------------
    @property
    def api(self) -> str:
        return str(self.state.api_url)

    def camera_url(self, i: int) -> str:
        assert self.rtsp is not None
        return self.rtsp.url(f"m{i % len(self.rtsp.mounts)}")

    def add_camera(self, camera_id: str, url: str, fps: float, **extra: Any) -> None:
        import httpx

        body = {"id": camera_id, "url": url, "fps": fps, "name": "bench", **extra}
        r = httpx.post(f"{self.api}/cameras", json=body, headers=self.auth, timeout=30.0)
        if r.status_code != 201:
            raise HarnessError(f"POST /cameras {camera_id}: {r.status_code} {r.text[:300]}")

    def remove_camera(self, camera_id: str) -> None:
        import httpx

        r = httpx.delete(f"{self.api}/cameras/{camera_id}", headers=self.auth, timeout=30.0)
        if r.status_code not in (204, 404):
            raise HarnessError(f"DELETE /cameras/{camera_id}: {r.status_code} {r.text[:300]}")

    def meta(self) -> dict[str, Any]:
        """What to record next to the figures: overrides (no ports/paths), machine, settings."""
        hidden = ("PORT", "DATA")
        return {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "argv": sys.argv,
            "cpus": os.cpu_count(),
            "overrides": {k: v for k, v in self.env.items() if k.startswith("EP_") and not any(h in k for h in hidden)},
            "videos": [str(v) for v in self.videos],
            "settings": json.loads(self.settings.model_dump_json()) if self.settings is not None else None,
        }
