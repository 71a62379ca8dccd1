"""Lag-based autoscaling policy for the ``EmotionClassifier`` deployment.

The classifier pulls faces from a Redis consumer group instead of receiving requests, so
Serve's default policy (ongoing requests) would never see its load. Each replica reports the
group's backlog through ``record_autoscaling_stats`` as ``queue_lag``; this policy sizes the
deployment so each replica has at most ``target_lag_per_replica`` faces waiting.

Limits: the lag is one number for the whole group (every replica reports the same value, so
the policy takes the maximum, not the sum); Serve averages the metric over its look-back period
and applies ``upscale_delay_s``, so a burst shorter than that is absorbed by the stream, which is
what it is for.
The controller imports this module by path, so it must stay importable without Redis or torch.
"""

from __future__ import annotations

import math
from typing import Any

LAG_METRIC = "queue_lag"
POLICY_PATH = "pipeline.classify.autoscale:QueueLagPolicy"


def desired_replicas(lag: float, target_lag_per_replica: float, lo: int, hi: int) -> int:
    """Replicas needed so that each holds at most ``target_lag_per_replica`` waiting faces."""
    if hi < lo:
        hi = lo
    wanted = math.ceil(max(lag, 0.0) / max(target_lag_per_replica, 1e-9))
    # At least one replica while anything waits, even when min_replicas is 0.
    if lag > 0:
        wanted = max(wanted, 1)
    return int(min(max(wanted, lo), hi))


class QueueLagPolicy:
    """Serve custom autoscaling policy (a class, so Serve instantiates it once with ``policy_kwargs``).

    Ray 2.60 wraps custom policies with the deployment's ``autoscaling_config``: min/max bounds,
    ``upscale_delay_s`` and ``downscale_delay_s`` (600 s unless set, which is why the options set
    it from ``classify.downscale_delay_s``). So this policy only says how many replicas the lag
    calls for; hysteresis is Serve's.

    Args:
        target_lag_per_replica: Waiting faces one replica is expected to absorb.
    """

    def __init__(self, target_lag_per_replica: float = 256.0) -> None:
        self.target = float(target_lag_per_replica)

    def decide(self, lag: float | None, current: int, lo: int, hi: int) -> int:
        """Pure decision step (tested without Ray)."""
        if lag is None:  # no replica reported yet (or Redis is down): keep what we have
            return min(max(current, lo), hi)
        return desired_replicas(lag, self.target, lo, hi)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        metrics = (ctx.aggregated_metrics or {}).get(LAG_METRIC) or {}
        lag = max(metrics.values()) if metrics else None
        wanted = self.decide(
            lag, ctx.current_num_replicas, ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
        )
        return wanted, ctx.policy_state or {}
