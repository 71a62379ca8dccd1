"""Per-track exponential smoothing of emotion probabilities.

A single frame's classification is noisy; a person's expression is not. Each
track keeps an EMA of its probability vector, and its dominant emotion is read
from the smoothed vector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.contracts import LABELS


@dataclass(frozen=True, slots=True)
class TrackEma:
    """Smoothed emotion of one track: the EMA of its probabilities, stored per track in Redis.

    Not the tracker's state (:class:`pipeline.detect.tracker.TrackerState`, which holds the
    boxes and ids of a camera's tracks).
    """

    probs: tuple[float, ...]
    last_seen: float
    observations: int = 1

    @property
    def dominant(self) -> str:
        return LABELS[max(range(len(self.probs)), key=self.probs.__getitem__)]

    def to_hash(self) -> dict[str, str]:
        """Fields of the Redis hash that stores this state."""
        return {
            "probs": json.dumps([round(p, 6) for p in self.probs]),
            "last_seen": repr(self.last_seen),
            "n": str(self.observations),
        }

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> TrackEma | None:
        """Parse a stored state; ``None`` for a missing or unreadable one (start afresh)."""
        if not raw:
            return None
        try:
            probs = tuple(float(p) for p in json.loads(raw[b"probs"]))
            if len(probs) != len(LABELS):
                return None
            return cls(probs=probs, last_seen=float(raw[b"last_seen"]), observations=int(raw[b"n"]))
        except (KeyError, ValueError, TypeError):
            return None


def ema_update(prev: TrackEma | None, probs: Sequence[float], ts: float, alpha: float) -> TrackEma:
    """Blend one observation into a track's state.

    Args:
        prev: Current state, or ``None`` for a new track (the observation becomes the state).
        probs: Probabilities of the new observation, label order.
        ts: Capture time of the observation.
        alpha: Weight of the new observation, 0 < alpha <= 1.

    Returns:
        The new state. ``last_seen`` never moves backwards, so a late (reclaimed)
        observation still counts but does not make the track look older.
    """
    if len(probs) != len(LABELS):
        raise ValueError(f"expected {len(LABELS)} probabilities, got {len(probs)}")
    if prev is None:
        return TrackEma(probs=tuple(float(p) for p in probs), last_seen=ts, observations=1)
    blended = tuple(alpha * float(p) + (1.0 - alpha) * q for p, q in zip(probs, prev.probs))
    return TrackEma(probs=blended, last_seen=max(ts, prev.last_seen), observations=prev.observations + 1)
