"""State shared by the store's parts: client, key builder, options, counters.

The store is sealed: Redis errors never leave it. Every public method of every
part translates them into :mod:`pipeline.store.exceptions` (``StoreUnavailable``
when Redis cannot be reached or answers too late, ``StoreError`` otherwise), so
no module outside ``pipeline/store`` needs to import ``redis``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from pipeline.store.exceptions import StoreError, StoreUnavailable
from pipeline.store.keys import Keys
from pipeline.store.models import StoreOptions

F = TypeVar("F", bound=Callable[..., Any])

#: A redis-py pipeline (transactional or not). Writes accept one so callers can batch them.
Pipe = Any


def translate_errors(method: F) -> F:
    """Re-raise redis-py errors from ``method`` as the store's own exceptions."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # redis-py's messages name host and port, never the password.
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"Redis error in {method.__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class StoreBase:
    """Holds the connection; the registry, stream and aggregate parts build on it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each part (mixin) is sealed where it is defined, so a method added later is covered too.
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, translate_errors(value))

    def __init__(self, client: redis.Redis, prefix: str = "ep:", options: StoreOptions | None = None) -> None:
        """Wrap a sync redis-py client.

        Args:
            client: Client created with ``decode_responses=False`` (ids and payloads are bytes).
            prefix: Prefix of every key.
            options: Tunables; defaults match the settings defaults.
        """
        if client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs a client with decode_responses=False")
        # Typed as Any on purpose: redis-py's stubs type every reply as ``bytes | str`` (or an
        # awaitable) whatever the client; this one never decodes, so replies are bytes.
        self.client: Any = client
        self.keys = Keys(prefix)
        self.options = options or StoreOptions()

    # -- counters ----------------------------------------------------------------
    @translate_errors
    def incr_counter(self, camera_id: str, name: str, n: int = 1, pipe: Pipe | None = None) -> None:
        """Add ``n`` to a monotonic counter (exported as a Prometheus counter).

        Args:
            camera_id: Camera the event belongs to, or :data:`~pipeline.store.keys.GLOBAL_SCOPE`.
            name: Counter name, e.g. ``refused``, ``published``, ``dead_letter``.
            n: Increment.
            pipe: Queue the write on this pipeline instead of running it now.
        """
        (pipe if pipe is not None else self.client).hincrby(self.keys.counters(camera_id), name, n)

    @translate_errors
    def get_counters(self, camera_id: str) -> dict[str, int]:
        """All counters of a camera (or of the global scope); empty when none."""
        raw = self.client.hgetall(self.keys.counters(camera_id))
        return {k.decode(): int(v) for k, v in raw.items()}
