"""Lifecycle of an embedded, real ``redis-server`` (Debian package) for laptops and tests.

The server runs from a generated config in its data dir with AOF persistence, so the
registry, aggregates and the faces stream's pending list survive a crash (even ``kill -9``).
It never uses port 6379: a local Ray head's GCS listens there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.exceptions import ConfigError, PipelineError


class RedisServerError(PipelineError):
    """The embedded redis-server could not be started or stopped."""


def _check_password(password: str) -> None:
    if not password or any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ConfigError("the Redis password must be non-empty and free of control characters")


def render_config(
    port: int, data_dir: Path, *, bind: str = "127.0.0.1", appendonly: bool = True, password: str | None = None
) -> str:
    """Render the redis.conf of an embedded server.

    Args:
        port: TCP port (never 6379, Ray's GCS uses it).
        data_dir: Directory for the AOF, dump, pid and log files.
        bind: Listen address; loopback unless the user asks otherwise.
        appendonly: Turn on AOF (``everysec``). Off only for throwaway test servers.
        password: Require this password (``requirepass``); None = no AUTH (loopback only).
    """
    lines = [
        f"port {port}",
        f"bind {bind}",
        "protected-mode yes",
        "daemonize no",
        f'dir "{data_dir}"',
        f'pidfile "{data_dir / "redis.pid"}"',
        f'logfile "{data_dir / "redis.log"}"',
        f"appendonly {'yes' if appendonly else 'no'}",
        "appendfsync everysec",
        # RDB snapshots would duplicate the AOF's job and fork on a 2-core laptop.
        'save ""',
        # Streams and buckets are bounded by the application; never evict accepted work.
        "maxmemory-policy noeviction",
    ]
    if password is not None:
        _check_password(password)
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'requirepass "{escaped}"')
    return "\n".join(lines) + "\n"


class EmbeddedRedis:
    """A ``redis-server`` child process with a generated config.

    Args:
        port: TCP port to listen on.
        data_dir: Where config, AOF, pidfile and log go (created if missing).
        binary: The redis-server executable.
        appendonly: AOF persistence on/off.
        password: Require this password (``requirepass``); :attr:`url` then carries it, so
            keep that URL out of logs (:func:`pipeline.common.urls.redact_url` masks it).
    """

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        binary: str = "redis-server",
        appendonly: bool = True,
        password: str | None = None,
    ) -> None:
        if port == 6379:
            raise ConfigError("embedded Redis must not use 6379: a local Ray head's GCS listens there")
        self.port = port
        self.data_dir = Path(data_dir).resolve()
        self.binary = binary
        self.appendonly = appendonly
        if password is not None:
            _check_password(password)
        self.password = password
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the server, with the password when one is set."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def ping(self, timeout: float = 0.5) -> bool:
        """Whether a server answers PING on the port (ours or someone else's)."""
        # No retries: redis-py's default backoff turns a refused connection into seconds.
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        except (redis.AuthenticationError, redis.ResponseError):
            # It answered, only refused our credentials (or that we sent some): a server is there.
            return True
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            RedisServerError: The binary is missing, the port is taken, or it did not come up.
        """
        exe = shutil.which(self.binary)
        if exe is None:
            raise RedisServerError(
                f"{self.binary!r} not found: install Debian's redis-server (make install does) "
                "or set EP_REDIS__URL to an existing server"
            )
        if self.ping():
            raise RedisServerError(
                f"port {self.port} already has a Redis server (a stack left running? `emotionpipe down`); "
                "or set EP_REDIS__URL to use that server"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        # The config may hold the password: readable by this user only.
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(
            render_config(self.port, self.data_dir, appendonly=self.appendonly, password=self.password)
        )
        # Own session: a Ctrl-C in the terminal reaches us first, and we shut Redis down cleanly.
        self._proc = subprocess.Popen(
            [exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisServerError(f"redis-server exited with {self._proc.returncode}; see {self.data_dir}/redis.log")
            if self.ping():
                return
            time.sleep(0.05)
        self.kill()
        raise RedisServerError(f"redis-server did not answer within {timeout:.0f}s; see {self.data_dir}/redis.log")

    def _pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        # Not our child: trust the pidfile only while a server answers on our port, so a
        # stale pidfile (after a crash) never makes us signal an unrelated, reused pid.
        if not self.ping():
            return None
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        return self.ping()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM: Redis fsyncs the AOF before exiting); works from another process too."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self._wait_gone(pid, timeout)

    def kill(self) -> None:
        """SIGKILL, to test crash recovery from the AOF."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._wait_gone(pid, 5.0)

    def _wait_gone(self, pid: int, timeout: float) -> None:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
