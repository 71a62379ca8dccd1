"""Simulated cameras for the pipeline benchmark: the GStreamer RTSP test server.

Real cameras encode on their own hardware; a simulator that re-encodes on the machine under
test steals its CPU. By default the benchmark therefore encodes each clip once, up front, to
640x480 H.264 without B-frames, and the server passes the packets through (~1 % of a core).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RTSP_SERVER = REPO / "tests" / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi


def transcode_for_passthrough(src: Path, out_dir: Path, width: int = 640, height: int = 480) -> Path:
    """Encode ``src`` once as a camera would send it: H.264, no B-frames, a key frame per second."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{src.stem}-{width}x{height}.mp4"
    if not dst.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-an",
             "-vf", f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                    f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1",
             # One slice per frame: sliced-threads streams arrived with missing slices through the
             # pass-through server (half-grey frames, faces lost).
             "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
             "-x264-params", "sliced-threads=0:slices=1",
             "-pix_fmt", "yuv420p", str(dst)],
            check=True,
        )
    return dst


class RtspServer:
    """The GStreamer RTSP test server, one mount per video."""

    def __init__(self, port: int, videos: list[Path], log: Path, passthrough: bool = False) -> None:
        self.port = port
        self.passthrough = passthrough
        self.mounts = {f"m{i}": v for i, v in enumerate(videos)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, index: int) -> str:
        return f"rtsp://127.0.0.1:{self.port}/m{index % len(self.mounts)}"

    def start(self, timeout: float = 15.0) -> None:
        args = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port)]
        if self.passthrough:
            args.append("--passthrough")
        args += [f"{name}={path}" for name, path in self.mounts.items()]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"RTSP server exited with {self.proc.returncode}; see {self.log}")
            if b"READY" in self.log.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"RTSP server not ready within {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


