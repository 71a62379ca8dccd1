"""Classifier batch sizes and inference times as Redis-backed histograms.

Classifier replicas run in other Ray processes than the API, so in-process
Prometheus metrics would only show what one replica saw. Instead every batch
adds one observation to two histograms in a Redis hash, inside the same
MULTI/EXEC that records its results (:meth:`AggregateOps.record_results`);
``/metrics`` reads the hash at scrape time. Cost: four or five HINCRBY(FLOAT)s
per batch, on one key.

Hash fields: ``{h}:b:{i}`` observations in bucket ``i`` (not cumulative),
``{h}:sum`` and ``{h}:count``, with ``h`` = ``batch`` or ``infer``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pipeline.store.base import Pipe, StoreBase
from pipeline.store.keys import Keys

#: Upper bounds of the batch-size buckets (faces per classified batch).
BATCH_BOUNDS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Upper bounds of the inference-time buckets (seconds per engine.predict call).
INFER_BOUNDS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_HISTOGRAMS = {"batch": BATCH_BOUNDS, "infer": INFER_BOUNDS}


@dataclass(frozen=True, slots=True)
class Histogram:
    """A Prometheus-style histogram: cumulative ``(upper bound, count)`` pairs, then ``+Inf``."""

    buckets: tuple[tuple[float, int], ...]
    total: float
    count: int


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    # Index of the first bound >= value; len(bounds) is the +Inf bucket.
    return bisect.bisect_left(bounds, value)


def queue_batch_observation(pipe: Pipe, keys: Keys, batch_size: int, inference_s: float | None) -> None:
    """Queue the histogram increments of one classified batch on ``pipe``."""
    key = keys.classifier_hist
    pipe.hincrby(key, f"batch:b:{_bucket(BATCH_BOUNDS, batch_size)}", 1)
    pipe.hincrby(key, "batch:sum", batch_size)
    pipe.hincrby(key, "batch:count", 1)
    if inference_s is not None and inference_s >= 0:
        pipe.hincrby(key, f"infer:b:{_bucket(INFER_BOUNDS, inference_s)}", 1)
        pipe.hincrbyfloat(key, "infer:sum", inference_s)
        pipe.hincrby(key, "infer:count", 1)


class ClassifierStatsOps(StoreBase):
    """Reads the classifier histograms written by ``record_results``."""

    def classifier_histograms(self) -> dict[str, Histogram]:
        """``{"batch": ..., "infer": ...}``; empty histograms before the first batch."""
        raw = {(k.decode() if isinstance(k, bytes) else k): v
               for k, v in self.client.hgetall(self.keys.classifier_hist).items()}
        out = {}
        for name, bounds in _HISTOGRAMS.items():
            running = 0
            cumulative = []
            for i, bound in enumerate(bounds):
                running += int(raw.get(f"{name}:b:{i}", 0))
                cumulative.append((bound, running))
            running += int(raw.get(f"{name}:b:{len(bounds)}", 0))
            cumulative.append((float("inf"), running))
            out[name] = Histogram(
                buckets=tuple(cumulative),
                total=float(raw.get(f"{name}:sum", 0.0)),
                count=int(raw.get(f"{name}:count", 0)),
            )
        return out
