"""Lag-based autoscaling policy for the ``EmotionClassifier`` deployment.

The classifier pulls faces from a Redis consumer group instead of receiving requests, so
Serve's default policy (ongoing requests) would never see its load. Each replica reports the
group's backlog through ``record_autoscaling_stats`` as ``queue_lag``; this policy sizes the
deployment so each replica has at most ``target_lag_per_replica`` faces waiting.

Limits: the lag is one number for the whole group (every replica reports the same value, so
the policy takes the maximum, not the sum); scaling reacts at the controller's metrics period
(seconds), so a burst shorter than that is absorbed by the stream, which is what it is for.
The controller imports this module by path, so it must stay importable without Redis or torch.
"""

from __future__ import annotations

import math
from typing import Any

LAG_METRIC = "queue_lag"
POLICY_PATH = "pipeline.runtime.autoscale:QueueLagPolicy"


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

    Args:
        target_lag_per_replica: Waiting faces one replica is expected to absorb.
        downscale_delay_s: The lower target must hold this long before replicas are removed,
            so a stream that empties between bursts does not flap.
    """

    def __init__(self, target_lag_per_replica: float = 256.0, downscale_delay_s: float = 30.0) -> None:
        self.target = float(target_lag_per_replica)
        self.downscale_delay_s = float(downscale_delay_s)

    def decide(self, lag: float | None, current: int, lo: int, hi: int, now: float, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Pure decision step (tested without Ray)."""
        state = dict(state)
        if lag is None:  # no replica reported yet (or Redis is down): keep what we have
            return min(max(current, lo), hi), state
        wanted = desired_replicas(lag, self.target, lo, hi)
        if wanted >= current:
            state.pop("below_since", None)
            return wanted, state
        below_since = state.setdefault("below_since", now)
        if now - below_since >= self.downscale_delay_s:
            state.pop("below_since", None)
            return wanted, state
        return current, state

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        metrics = (ctx.aggregated_metrics or {}).get(LAG_METRIC) or {}
        lag = max(metrics.values()) if metrics else None
        now = ctx.current_time if ctx.current_time is not None else 0.0
        return self.decide(
            lag,
            ctx.current_num_replicas,
            ctx.capacity_adjusted_min_replicas,
            ctx.capacity_adjusted_max_replicas,
            now,
            ctx.policy_state or {},
        )
