"""Events per second over a sliding window of event times."""

from __future__ import annotations

from collections.abc import Iterable


def sliding_rate(times: Iterable[float], now: float, window_s: float) -> float:
    """Rate of the events in ``times`` that fall within ``window_s`` seconds before ``now``.

    The rate is (events - 1) / (span between the first and last of them), so it does not
    depend on where in the window the events fall. It is 0 with fewer than two events,
    and also when the newest is older than half the window: a source that stopped must
    read as stopped, not as its old rate.

    Args:
        times: Event times, oldest first (e.g. a bounded ``deque`` of ``time.monotonic()``).
        now: The current time on the same clock.
        window_s: Length of the window in seconds.

    Returns:
        Events per second.
    """
    recent = [t for t in times if now - t <= window_s]
    if len(recent) < 2 or now - recent[-1] > window_s / 2:
        return 0.0
    span = recent[-1] - recent[0]
    return (len(recent) - 1) / span if span > 0 else 0.0
