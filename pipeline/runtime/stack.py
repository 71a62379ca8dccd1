"""The local stack: embedded Redis + Ray + the Serve app + the camera manager (+ demo cameras).

``up`` runs in the foreground (``make run``) and shuts everything down on SIGTERM/SIGINT;
a second signal exits at once. ``up(detach=True)`` runs the same foreground process in the
background and returns when the API answers. ``down`` finds that process through the state
file in the data dir and asks it to stop, so there is one shutdown path.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pipeline
from pipeline.contracts import APP_NAME
from pipeline.exceptions import PipelineError
from pipeline.runtime.ray_cluster import connect, disconnect
from pipeline.runtime.redis_server import EmbeddedRedis
from pipeline.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "stack.json"
TOKEN_FILE = "api-token"
LOG_FILE = "stack.log"

# Demo cameras: (id, file under the shared media folder, name). Looping files stand in for cameras.
DEMO_CAMERAS: tuple[tuple[str, str, str], ...] = (
    ("demo-happy", "video/cremad/1001_DFA_HAP_XX.mp4", "CREMA-D actor 1001, happy (loop)"),
    ("demo-wolf", "video/WolfgangLanger_Pexels.mp4", "Pexels, sad to smiling (loop)"),
    ("demo-noface", "video/no_face.mp4", "Empty scene (loop)"),
)


class StackError(PipelineError):
    """The local stack could not be started, found or stopped."""


@dataclass
class StackState:
    """What a running ``emotionpipe up`` wrote to ``<data_dir>/stack.json``."""

    pid: int
    api_url: str
    redis_url: str
    embedded_redis: bool
    ray_address: str
    ray_started_here: bool
    started_at: float
    demo_cameras: list[str] = field(default_factory=list)
    token_file: str | None = None

    def write(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / (STATE_FILE + ".tmp")
        tmp.touch(mode=0o600)  # redis_url may carry the embedded server's password
        tmp.chmod(0o600)
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(data_dir / STATE_FILE)  # atomic: `status` never reads half a file

    @classmethod
    def read(cls, data_dir: Path) -> StackState | None:
        try:
            return cls(**json.loads((data_dir / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def api_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::") else settings.api.host
    return f"http://{host}:{settings.api.port}"


def default_media_dir() -> Path:
    """``$EP_DEMO_MEDIA`` or the shared media beside the repository checkout."""
    env = os.environ.get("EP_DEMO_MEDIA")
    if env:
        return Path(env)
    return Path(pipeline.__file__).resolve().parents[2] / "shared" / "media"


def _redis_password(settings: Settings) -> str | None:
    return settings.redis.password.get_secret_value() if settings.redis.password else None


def with_section(settings: Settings, section: str, **changes: Any) -> Settings:
    """A copy of the frozen settings with fields of one section replaced (and validated).

    Validated, not ``model_copy(update=...)``: that skips validation, so e.g. a plain string
    given for a ``SecretStr`` token stayed a string and broke its users.
    """
    current = getattr(settings, section)
    updated = type(current).model_validate({**current.model_dump(), **changes})
    return settings.model_copy(update={section: updated})


def demo_settings(settings: Settings) -> Settings:
    """The demo profile: file sources and loopback cameras allowed (a laptop's own test servers).

    Without the demo profile both stay off, as on a cluster: set ``EP_INGEST__ALLOW_LOOPBACK``
    to read a camera served on the same machine.
    """
    return with_section(settings, "ingest", allow_files=True, allow_loopback=True)


def register_demo_cameras(store: Any, media_dir: Path) -> list[str]:
    """Register the demo cameras whose files exist; existing registrations are kept as they are."""
    from pipeline.exceptions import CameraExists
    from pipeline.store.models import CameraConfig

    added = []
    for camera_id, rel, name in DEMO_CAMERAS:
        path = media_dir / rel
        if not path.is_file():
            continue
        try:
            store.add_camera(CameraConfig(id=camera_id, url=str(path), name=name, labels={"demo": "true"}))
        except CameraExists:
            pass
        added.append(camera_id)
    return added


def deploy(settings: Settings, *, loop_files: bool = False) -> str:
    """Deploy the Serve app and the camera manager on the connected Ray cluster.

    Returns:
        The API base URL.
    """
    from ray import serve

    from pipeline.ingest.manager import start_camera_manager
    from pipeline.serve_app import build_app

    serve.start(http_options={"host": settings.api.host, "port": settings.api.port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    start_camera_manager(settings, loop_files=loop_files)
    return api_url(settings)


def undeploy(settings: Settings, *, shutdown_serve: bool = True) -> None:
    """Stop the camera manager (and its readers), then the Serve application.

    Args:
        settings: The settings tree.
        shutdown_serve: Also stop Serve itself (controller, proxy). False on a shared cluster,
            where other applications may be running: then only this application is deleted.
    """
    from ray import serve

    from pipeline.ingest.manager import stop_camera_manager

    try:
        stop_camera_manager(settings.ray.namespace)
    except Exception as exc:  # keep tearing down: Serve and Ray must go even so
        log.warning("camera manager: %s", exc)
    try:
        if shutdown_serve:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    except Exception as exc:
        log.warning("serve shutdown: %s", exc)


class Stack:
    """One process's stack: owns the embedded Redis and the Ray connection it made.

    Args:
        settings: The settings tree.
        demo: Register the demo cameras (and allow/loop file sources).
        media_dir: Where the demo media are; default :func:`default_media_dir`.
    """

    def __init__(self, settings: Settings, *, demo: bool = False, media_dir: Path | None = None) -> None:
        self.settings = demo_settings(settings) if demo else settings
        self.demo = demo
        self.media_dir = media_dir or default_media_dir()
        self.redis: EmbeddedRedis | None = None
        self.state: StackState | None = None
        self._owns_ray = False

    def start(self) -> StackState:
        """Start Redis (unless configured), Ray, the app and the demo cameras; write the state file."""
        settings = self.settings
        data_dir = settings.data_dir.resolve()
        if not settings.redis.url:
            self.redis = EmbeddedRedis(
                settings.redis.embedded_port, data_dir / "redis", binary=settings.redis.embedded_binary,
                password=_redis_password(settings),
            )
            self.redis.start()
            settings = with_section(settings, "redis", url=self.redis.url)
        if not settings.api.tokens and settings.api.token_file is None:
            # Mutations always need a token; a laptop stack gets its own, readable by this user only.
            from pipeline.api.auth import ensure_token_file

            settings = with_section(settings, "api", token_file=ensure_token_file(data_dir / TOKEN_FILE))
        self.settings = settings
        try:
            ray_conn = connect(settings)
            self._owns_ray = ray_conn.started_here
            url = deploy(settings, loop_files=self.demo)
            cameras: list[str] = []
            if self.demo:
                from pipeline.store.redis_store import RedisStore

                store = RedisStore.from_settings(settings)
                try:
                    cameras = register_demo_cameras(store, self.media_dir)
                finally:
                    store.close()
                if not cameras:
                    log.warning("no demo media under %s; add cameras with `emotionpipe cameras add`", self.media_dir)
        except BaseException:
            self.stop()
            raise
        self.state = StackState(
            pid=os.getpid(),
            api_url=url,
            redis_url=str(settings.redis.url),
            embedded_redis=self.redis is not None,
            ray_address=ray_conn.address,
            ray_started_here=ray_conn.started_here,
            started_at=time.time(),
            demo_cameras=cameras,
            token_file=str(settings.api.token_file) if settings.api.token_file else None,
        )
        self.state.write(data_dir)
        return self.state

    def stop(self) -> None:
        """Tear down in reverse order; every step runs even if an earlier one failed."""
        import ray

        if ray.is_initialized():
            undeploy(self.settings, shutdown_serve=self._owns_ray)
            disconnect()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        state = StackState.read(self.settings.data_dir.resolve())
        if state is not None and state.pid == os.getpid():
            (self.settings.data_dir.resolve() / STATE_FILE).unlink(missing_ok=True)


def run_foreground(settings: Settings, *, demo: bool, out: Any = None) -> int:
    """``emotionpipe up``: start, print the URL, wait for SIGTERM/SIGINT, shut down cleanly."""
    out = out or sys.stdout
    existing = status(settings)
    if existing.get("running"):
        raise StackError(
            f"a stack is already running (pid {existing['pid']}, {existing['api_url']}); `emotionpipe down` first"
        )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # second signal: the user really wants out now
        stop.set()

    stack = Stack(settings, demo=demo)
    try:
        # A signal during start-up takes the default route (KeyboardInterrupt / exit) and
        # still reaches the `finally` below.
        state = stack.start()
        # Installed after ray.init, which puts its own SIGTERM handler in place (it aborts).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        print(f"emotion-pipeline is up: dashboard {state.api_url}/  API docs {state.api_url}/docs", file=out)
        if state.token_file:
            print(f"  changes need the API token in {state.token_file} (`emotionpipe token` prints it)", file=out)
        for camera in state.demo_cameras:
            print(f"  demo camera {camera}: {state.api_url}/cameras/{camera}/summary?window=60", file=out)
        print("Ctrl-C or `emotionpipe down` stops it.", file=out, flush=True)
        while not stop.wait(1.0):
            pass
        print("shutting down ...", file=out, flush=True)
    finally:
        stack.stop()
    return 0


def start_detached(settings: Settings, argv: Sequence[str], timeout: float = 300.0) -> StackState:
    """Run ``emotionpipe up`` (``argv``) in the background and wait until it is up."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOG_FILE).open("ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *argv],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"`emotionpipe up` exited with {proc.returncode}; see {data_dir / LOG_FILE}")
        state = StackState.read(data_dir)
        if state is not None and state.pid == proc.pid:
            return state
        time.sleep(0.5)
    proc.terminate()
    raise StackError(f"stack not up after {timeout:.0f}s; see {data_dir / LOG_FILE}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(settings: Settings) -> dict[str, Any]:
    """State of the local stack: running, pid, URLs, and whether the API is ready."""
    state = StackState.read(settings.data_dir.resolve())
    if state is None or not _alive(state.pid):
        return {"running": False}
    info: dict[str, Any] = {"running": True, **asdict(state)}
    from pipeline.common.urls import redact_url

    info["redis_url"] = redact_url(state.redis_url)  # printed by `emotionpipe status`
    try:
        import httpx

        info["ready"] = httpx.get(f"{state.api_url}/readyz", timeout=3.0).status_code == 200
    except Exception:  # noqa: BLE001 - API still starting or gone: report, do not fail
        info["ready"] = False
    return info


def down(settings: Settings, timeout: float = 90.0) -> bool:
    """Stop the stack started by ``emotionpipe up``. Returns False if none was running.

    Also cleans up after an ``up`` that was killed outright: its embedded Redis runs in its
    own session and would otherwise keep the port.
    """
    data_dir = settings.data_dir.resolve()
    state = StackState.read(data_dir)
    if state is None:
        return False
    was_running = _alive(state.pid)
    if was_running:
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(state.pid):
            time.sleep(0.2)
        if _alive(state.pid):
            # It did not finish a clean shutdown within the bound: force it.
            os.kill(state.pid, signal.SIGKILL)
    if state.embedded_redis:
        # No-op after a clean shutdown (nothing answers on the port any more).
        EmbeddedRedis(settings.redis.embedded_port, data_dir / "redis", password=_redis_password(settings)).stop()
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return was_running
