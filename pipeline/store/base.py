"""State shared by the store's parts: client, key builder, options, counters."""

from __future__ import annotations

from typing import Any

import redis

from pipeline.store.keys import Keys
from pipeline.store.models import StoreOptions

#: A redis-py pipeline (transactional or not). Writes accept one so callers can batch them.
Pipe = Any


class StoreBase:
    """Holds the connection; the registry, stream and aggregate parts build on it."""

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
    def incr_counter(self, camera_id: str, name: str, n: int = 1, pipe: Pipe | None = None) -> None:
        """Add ``n`` to a monotonic counter (exported as a Prometheus counter).

        Args:
            camera_id: Camera the event belongs to, or :data:`~pipeline.store.keys.GLOBAL_SCOPE`.
            name: Counter name, e.g. ``refused``, ``published``, ``dead_letter``.
            n: Increment.
            pipe: Queue the write on this pipeline instead of running it now.
        """
        (pipe if pipe is not None else self.client).hincrby(self.keys.counters(camera_id), name, n)

    def get_counters(self, camera_id: str) -> dict[str, int]:
        """All counters of a camera (or of the global scope); empty when none."""
        raw = self.client.hgetall(self.keys.counters(camera_id))
        return {k.decode(): int(v) for k, v in raw.items()}
