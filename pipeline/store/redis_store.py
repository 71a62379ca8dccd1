"""THE Redis adapter: the only code that talks to Redis or knows key names.

:class:`RedisStore` combines the registry, stream and aggregate parts, each in
its own module to stay small. Construct it with a sync redis-py client
(``decode_responses=False``) or with :meth:`RedisStore.from_url`.
"""

from __future__ import annotations

import redis

from pipeline.exceptions import ConfigError
from pipeline.settings import Settings
from pipeline.store.aggregates import AggregateOps
from pipeline.store.alerts import AlertOps
from pipeline.store.classifier_stats import ClassifierStatsOps
from pipeline.store.models import StoreOptions
from pipeline.store.ranges import RangeOps
from pipeline.store.registry import RegistryOps
from pipeline.store.snapshots import SnapshotOps
from pipeline.store.streams import StreamOps


class RedisStore(RegistryOps, StreamOps, AggregateOps, RangeOps, ClassifierStatsOps, AlertOps, SnapshotOps):
    """Camera registry, health, counters, faces stream, aggregates and alert rules on one Redis."""

    @classmethod
    def from_url(cls, url: str, prefix: str = "ep:", options: StoreOptions | None = None) -> RedisStore:
        """Connect to ``url`` (``redis://host:port/db``).

        The socket timeout is far above any XREADGROUP block time the consumer uses,
        so only a dead connection trips it.
        """
        client = redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=5,
            socket_timeout=30,
            health_check_interval=30,
        )
        return cls(client, prefix=prefix, options=options)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        """Connect as configured in the settings tree.

        Raises:
            ConfigError: If no Redis URL is set (embedded mode must start Redis first
                and pass its URL on).
        """
        if not settings.redis.url:
            raise ConfigError("settings.redis.url is unset: start the embedded Redis and set its URL first")
        return cls.from_url(settings.redis.url, settings.redis.prefix, StoreOptions.from_settings(settings))

    def ping(self) -> bool:
        """True when Redis answers (for readiness probes); never raises."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def server_stats(self) -> dict[str, int]:
        """Commands processed and memory used by the Redis server (benchmarks report both)."""
        return {
            "commands_processed": int(self.client.info("stats")["total_commands_processed"]),
            "used_memory": int(self.client.info("memory")["used_memory"]),
        }

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()
