"""Simulated cameras for the pipeline benchmark: the GStreamer RTSP test server.

Real cameras encode on their own hardware; a simulator that re-encodes on the machine under
test steals its CPU. By default the benchmark therefore encodes each clip once, up front, to
640x480 H.264 without B-frames, and the server passes the packets through (~1 % of a core).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

#: The server script, shipped inside the package (run by SYSTEM_PYTHON, never imported).
RTSP_SERVER = Path(__file__).resolve().with_name("rtsp_server.py")
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


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class RtspServer:
    """The GStreamer RTSP test server as a child process; killable and restartable on one port.

    Shared by the benchmark and the test fixtures. ``mounts`` maps a mount name to a file:
    ``rtsp://<host>:PORT/<name>``. ``host`` is the address it listens on: loopback by default,
    the gateway of a container network for cameras that containers read.
    """

    def __init__(self, port: int, mounts: dict[str, Path], log: Path, passthrough: bool = False,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.mounts = dict(mounts)
        self.log = log
        self.passthrough = passthrough
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, mount: str) -> str:
        if mount not in self.mounts:
            raise KeyError(f"no RTSP mount {mount!r}; have {sorted(self.mounts)}")
        return f"rtsp://{self.host}:{self.port}/{mount}"

    def start(self, timeout: float = 15.0) -> None:
        args = [SYSTEM_PYTHON, str(RTSP_SERVER), "--host", self.host, "--port", str(self.port)]
        if self.passthrough:
            args.append("--passthrough")
        args += [f"{name}={path}" for name, path in self.mounts.items()]
        # A file, not a pipe: GStreamer warnings must never fill a pipe and stall the server.
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        if not _wait_port(self.host, self.port, timeout):
            code = self._proc.poll()
            self.kill()
            raise RuntimeError(f"RTSP server not listening on {self.port} within {timeout}s (exit {code}); see {self.log}")

    def kill(self) -> None:
        """SIGKILL: readers see the connection drop, as when a camera dies."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
