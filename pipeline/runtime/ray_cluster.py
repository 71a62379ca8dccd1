"""Start or join the Ray cluster the stack runs on.

Local mode starts Ray *in this process* (``address="local"``): the head lives exactly as long
as ``emotionpipe up``, so stopping it never needs ``ray stop`` (which kills every Ray process on
the machine, other users' clusters included). Joining a configured address leaves that cluster
running on shutdown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pipeline.settings import Settings

log = logging.getLogger(__name__)

# Local clusters otherwise switch on token auth (dashboard/`serve deploy` answer 401) and send
# usage stats; neither belongs on a laptop or in CI. setdefault: an operator's choice wins.
RAY_ENV_DEFAULTS = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RayConnection:
    """How this process is attached to Ray."""

    address: str
    started_here: bool


def apply_env_defaults() -> None:
    """Set the Ray environment defaults; must run before ``import ray`` starts anything."""
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def connect(settings: Settings) -> RayConnection:
    """Join ``settings.ray.address`` or start a local cluster in this process.

    A process that is already connected (tests, notebooks) keeps its connection.
    """
    apply_env_defaults()
    import ray

    if ray.is_initialized():
        return RayConnection(address=ray.get_runtime_context().gcs_address, started_here=False)
    if settings.ray.address:
        ray.init(address=settings.ray.address, namespace=settings.ray.namespace, log_to_driver=False)
        log.info("joined Ray cluster at %s", settings.ray.address)
        return RayConnection(address=settings.ray.address, started_here=False)
    ray.init(
        address="local",
        num_cpus=settings.ray.num_cpus,
        # The dashboard costs ~0.9 GB RSS on a laptop and nothing here needs it.
        include_dashboard=False,
        # No _node_ip_address: Ray 2.60 turns 127.0.0.1 back into the machine's address
        # (services.resolve_ip_for_localhost) and binds all interfaces regardless.
        namespace=settings.ray.namespace,
        log_to_driver=False,
    )
    address = ray.get_runtime_context().gcs_address
    log.info("started local Ray at %s", address)
    return RayConnection(address=address, started_here=True)


def disconnect() -> None:
    """Leave the cluster; a head started here stops with it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
