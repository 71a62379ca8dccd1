"""Exponential backoff: the one formula for reconnects, respawns and retries."""

from __future__ import annotations

import random

# 2**64 times any sane initial delay is far beyond any cap; a larger exponent would only
# risk an OverflowError (2.0**1024) for a retry loop that has been failing for days.
_MAX_EXPONENT = 64


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (0 for the first retry).

    The ceiling is ``initial_s * 2**attempt``, capped at ``max_s``. With ``rng`` the
    delay is drawn uniformly from ``[0, ceiling]`` ("full jitter", AWS architecture
    blog), which spreads the retries of many clients behind one failed server instead
    of synchronising them; without it the delay is the ceiling itself.

    Args:
        attempt: Retries made before this one (0, 1, 2 ...); negative counts as 0.
        initial_s: Delay of the first retry.
        max_s: Cap of the delay.
        rng: Random source for full jitter; ``None`` for deterministic delays.

    Returns:
        The delay in seconds.
    """
    ceiling = min(max_s, initial_s * (2.0 ** min(max(attempt, 0), _MAX_EXPONENT)))
    return rng.uniform(0.0, ceiling) if rng is not None else ceiling
