"""Prometheus metrics read from Redis at scrape time.

Readers, detectors and classifiers run in other Ray processes, and the API may run
several replicas: process-local metrics would each show a fragment. The
:class:`StoreCollector` instead reads what the pipeline already keeps in Redis
(reader health hashes, counters, buckets, the faces stream, the classifier histograms)
on every scrape, so any replica answers the same. Label values are camera ids (their
pattern allows no URL), group-free, and reader states from a fixed set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from pipeline.ingest.capacity import CapacityReport, capacity_report
from pipeline.ingest.types import StreamState
from pipeline.store.classifier_stats import Histogram
from pipeline.store.redis_store import RedisStore

#: Reader states (pipeline.ingest.types.StreamState) plus "unknown" for a reader that does not report.
STATES = (*(state.value for state in StreamState), "unknown")
#: Window of the faces/s gauge and of the end-to-end latency quantiles.
RATE_WINDOW_S = 60


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class StoreCollector(Collector):
    """A ``prometheus_client`` collector over the Redis store (one scrape = a few pipelined reads)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        # Empty: registering must not touch Redis (the app is built before Redis is up).
        return []

    def collect(self) -> Iterator[Metric]:
        cams = self.store.list_cameras()
        ids = [c.id for c in cams]
        snapshots = self.store.health_and_counters(ids)
        rates = self.store.faces_rates(ids, RATE_WINDOW_S) if ids else {}
        yield from self._cameras(cams, snapshots, rates)
        yield from _capacity(capacity_report(h for h, _ in snapshots.values()))
        yield from self._queue()
        yield from self._classifier()

    def _cameras(self, cams: list[Any], snapshots: dict[str, Any], rates: dict[str, float]) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"ep_camera_{name}", doc, labels=["camera"])

        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"ep_camera_{name}", doc, labels=["camera"])

        enabled = gauge("enabled", "1 when the camera is enabled, 0 when paused.")
        up = gauge("up", "1 when the camera's reader reports health, else 0.")
        state = GaugeMetricFamily("ep_camera_state", "Reader state (1 for the current one).", labels=["camera", "state"])
        gauges = {
            "fps_in": gauge("fps_in", "Frames per second read from the source."),
            "fps_out": gauge("fps_processed", "Frames per second processed: sent to face detection, or idle (no "
                             "tracked face and no full scan due: nothing to detect)."),
            "fps_target": gauge("fps_target", "Configured sampling rate."),
            "inflight": gauge("frames_inflight", "Frames in detection now."),
        }
        health_counters = {
            "frames_in": counter("frames_in", "Frames read from the source (since the reader started)."),
            "frames_sent": counter("frames_processed", "Frames sent to detection (since the reader started)."),
            "frames_idle": counter("frames_idle", "Frames that needed no detection: no tracked face and no full "
                                   "scan due (since the reader started)."),
            "dropped": counter("frames_dropped", "Frames dropped at the reader because detection was saturated."),
            "detect_skipped": counter("frames_skipped_stale", "Frames skipped by a detector: older than "
                                      "detect.max_frame_age_s when their turn came."),
            "faces_total": counter("faces_detected", "Faces detected (since the reader started)."),
            "reconnects": counter("reconnects", "Reconnections of the source."),
        }
        store_counters = {
            "published": counter("faces_published", "Face crops queued on the faces stream."),
            "refused": counter("faces_refused", "Face crops refused because the stream was full."),
            "classified": counter("faces_classified", "Faces classified and recorded."),
            "dead_letter": counter("dead_letter", "Entries of this camera moved to the dead-letter stream."),
        }
        faces_rate = gauge("faces_per_second", f"Faces classified per second over the last {RATE_WINDOW_S} s.")
        latency = gauge("detect_latency_seconds", "Latest frame-to-detection latency.")
        for cam in cams:
            health, counters = snapshots.get(cam.id, ({}, {}))
            enabled.add_metric([cam.id], 1.0 if cam.enabled else 0.0)
            up.add_metric([cam.id], 1.0 if health else 0.0)
            current = str(health.get("state", "unknown")) if health else "unknown"
            current = current if current in STATES else "unknown"
            for s in STATES:
                state.add_metric([cam.id, s], 1.0 if s == current else 0.0)
            for field, g in gauges.items():
                if field in health:
                    g.add_metric([cam.id], _num(health[field]))
            for field, c in health_counters.items():
                if field in health:
                    c.add_metric([cam.id], _num(health[field]))
            for field, c in store_counters.items():
                c.add_metric([cam.id], float(counters.get(field, 0)))
            faces_rate.add_metric([cam.id], rates.get(cam.id, 0.0))
            if "latency_ms" in health:
                latency.add_metric([cam.id], _num(health["latency_ms"]) / 1000.0)
        yield from (enabled, up, state, *gauges.values(), *health_counters.values(), *store_counters.values(),
                    faces_rate, latency)

    def _queue(self) -> Iterator[Metric]:
        stats = self.store.queue_stats()
        for key, doc in (
            ("length", "Entries in the faces stream (acknowledged ones are trimmed)."),
            ("lag", "Entries not yet delivered to any classifier."),
            ("pending", "Entries delivered but not acknowledged."),
            ("consumers", "Classifier consumers in the group."),
        ):
            g = GaugeMetricFamily(f"ep_faces_stream_{key}", doc)
            g.add_metric([], float(stats[key]))
            yield g
        dead = CounterMetricFamily("ep_dead_letter", "Entries moved to the dead-letter stream (all cameras).")
        dead.add_metric([], float(self.store.get_counters("_all").get("dead_letter", 0)))
        yield dead
        since = time.time() - RATE_WINDOW_S
        samples = sorted(self.store.latency_samples(since=since))
        lat = GaugeMetricFamily(
            "ep_e2e_latency_seconds", f"Capture-to-aggregate latency quantiles over the last {RATE_WINDOW_S} s.",
            labels=["quantile"],
        )
        for q in (0.5, 0.95, 0.99):
            lat.add_metric([str(q)], _quantile(samples, q))
        yield lat

    def _classifier(self) -> Iterator[Metric]:
        hists = self.store.classifier_histograms()
        yield _histogram("ep_classifier_batch_size", "Faces per classified batch.", hists["batch"])
        yield _histogram("ep_classifier_inference_seconds", "Engine time per batch.", hists["infer"])


def camera_capacity(store: RedisStore) -> CapacityReport:
    """The capacity report of every registered camera, from their health in the store."""
    ids = [c.id for c in store.list_cameras()]
    return capacity_report(h for h, _ in store.health_and_counters(ids).values())


def _capacity(report: CapacityReport) -> Iterator[Metric]:
    for name, value, doc in (
        ("over_capacity", float(report.over_capacity), "1 when the cameras drop more than 5 % of their frames: "
         "the pipeline cannot keep up (add CPUs/replicas, lower fps, or remove cameras)."),
        ("demand_fps", report.demand_fps, "Frames per second the live cameras ask for (sum of their fps)."),
        ("processed_fps", report.processed_fps, "Frames per second processed, all cameras."),
        ("dropped_fps", report.dropped_fps, "Frames per second dropped, all cameras (detection saturated)."),
        ("sustainable_cameras", float(report.sustainable_cameras or 0), "When over capacity, the cameras the "
         "processed rate would serve in full at their mean fps; 0 when keeping up."),
    ):
        g = GaugeMetricFamily(f"ep_pipeline_{name}", doc)
        g.add_metric([], float(value))
        yield g


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    buckets = [(floatToGoString(le), float(n)) for le, n in h.buckets]  # "2.0", "+Inf" like client histograms
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)


def build_registry(store: RedisStore) -> CollectorRegistry:
    """A registry holding only the store collector (not the process-global default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return registry
