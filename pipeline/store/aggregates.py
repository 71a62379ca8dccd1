"""Recording classification results and reading window summaries.

:meth:`AggregateOps.record_results` is the consumer's commit point: bucket
increments, track sets, per-track EMA state, recent results, the processed-id
marks, the end-to-end latency samples, the per-camera ``classified`` counters, the
classifier batch histograms and the XACK all go in one MULTI/EXEC. The processed-id sets and the
touched track states are WATCHed, so a message reclaimed and recorded twice
(or two consumers updating one track) retries instead of double counting.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict


from pipeline.aggregate.buckets import MINUTE, BucketTotals, accumulate, covering_buckets, window_buckets
from pipeline.aggregate.ema import TrackEma, ema_update
from pipeline.aggregate.summary import SeriesPoint, Summary, build_series, build_summary, track_summary
from pipeline.contracts import EmotionResult
from pipeline.exceptions import ContractError
from pipeline.store.base import Pipe, StoreBase
from pipeline.store.classifier_stats import queue_batch_observation
from pipeline.store.keys import CLASSIFIER_GROUP, GLOBAL_SCOPE

#: Latency samples kept per camera and globally (newest first): enough for p99 over a minute
#: of a busy camera, small enough that a summary read stays cheap.
LATENCY_SAMPLES = 2000


class AggregateOps(StoreBase):
    """Per-camera time buckets, track smoothing and recent results."""

    def record_results(
        self, results: list[EmotionResult], msg_ids: list[bytes], *, inference_s: float | None = None
    ) -> int:
        """Record classified faces and acknowledge their stream entries, atomically.

        Idempotent per message id: an id already recorded is acknowledged again but
        not counted again. Results are matched to ``msg_ids`` by position.

        Args:
            results: The batch's results.
            msg_ids: Their stream entry ids, by position.
            inference_s: Time the engine took for this batch, if measured; it goes into
                the classifier histograms with the batch size (``/metrics``).

        Returns:
            Number of results newly counted.

        Raises:
            ValueError: If the two lists differ in length.
        """
        if len(results) != len(msg_ids):
            raise ValueError(f"{len(results)} results but {len(msg_ids)} message ids")
        if not results:
            return 0
        pairs: dict[bytes, EmotionResult] = {}
        for msg_id, result in zip(msg_ids, results):
            pairs.setdefault(msg_id, result)  # the same id twice in one batch counts once
        by_done_key: dict[str, list[bytes]] = defaultdict(list)
        for msg_id in pairs:
            by_done_key[self.keys.done(msg_id)].append(msg_id)
        track_keys = {
            (r.camera_id, r.track_id): self.keys.track(r.camera_id, r.track_id)
            for r in pairs.values()
            if r.track_id is not None
        }
        opts = self.options

        def txn(pipe: Pipe) -> int:
            # Read phase (WATCH is active, commands run immediately).
            done: set[bytes] = set()
            for key, ids in by_done_key.items():
                done.update(i for i, seen in zip(ids, pipe.smismember(key, ids)) if seen)
            fresh = sorted(
                ((i, r) for i, r in pairs.items() if i not in done), key=lambda p: (p[1].ts, p[0])
            )
            states: dict[tuple[str, int], TrackEma | None] = {}
            for _, r in fresh:
                if r.track_id is not None and (r.camera_id, r.track_id) not in states:
                    states[(r.camera_id, r.track_id)] = TrackEma.from_hash(
                        pipe.hgetall(track_keys[(r.camera_id, r.track_id)])
                    )
            for _, r in fresh:  # oldest first, so the EMA ends at the newest face
                if r.track_id is not None:
                    tk = (r.camera_id, r.track_id)
                    states[tk] = ema_update(states[tk], r.probs, r.ts, opts.track_ema)

            pipe.multi()
            pipe.xack(self.keys.faces, CLASSIFIER_GROUP, *pairs)
            for key, ids in by_done_key.items():
                pipe.sadd(key, *ids)
                pipe.expire(key, opts.done_ttl_s)
            for (camera_id, resolution, bucket), totals in accumulate(r for _, r in fresh).items():
                ttl = opts.bucket_ttl_s if resolution == MINUTE else opts.second_ttl_s
                key = self.keys.bucket(camera_id, resolution, bucket)
                ints, floats = totals.increments()
                for field, count in ints.items():
                    pipe.hincrby(key, field, count)
                for field, amount in floats.items():
                    pipe.hincrbyfloat(key, field, amount)
                pipe.expire(key, ttl)
                if totals.tracks:
                    tkey = self.keys.bucket_tracks(camera_id, resolution, bucket)
                    pipe.sadd(tkey, *totals.tracks)
                    pipe.expire(tkey, ttl)
            for tk, state in states.items():
                assert state is not None  # every watched track got at least one observation
                pipe.hset(track_keys[tk], mapping=state.to_hash())
                pipe.expire(track_keys[tk], opts.bucket_ttl_s)
            newest: dict[str, EmotionResult] = {}
            # Capture -> committed: measured as late as possible, just before EXEC.
            now = time.time()
            latencies: dict[str, list[str]] = defaultdict(list)
            for _, r in fresh:
                newest[r.camera_id] = r
                # "commit_ts:latency": lets readers select the samples of a time window.
                latencies[r.camera_id].append(f"{now:.6f}:{now - r.ts:.4f}")
                if opts.recent_results:
                    pipe.lpush(self.keys.recent(r.camera_id), r.encode())
            if fresh:
                latencies[GLOBAL_SCOPE] = [v for samples in latencies.values() for v in samples]
                for camera_id, n in Counter(r.camera_id for _, r in fresh).items():
                    self.incr_counter(camera_id, "classified", n, pipe=pipe)
            queue_batch_observation(pipe, self.keys, len(results), inference_s)
            for scope, samples in latencies.items():
                key = self.keys.latency(scope)
                pipe.lpush(key, *samples)
                pipe.ltrim(key, 0, LATENCY_SAMPLES - 1)
                pipe.expire(key, opts.bucket_ttl_s)
            for camera_id, r in newest.items():
                if opts.recent_results:
                    pipe.ltrim(self.keys.recent(camera_id), 0, opts.recent_results - 1)
                    pipe.expire(self.keys.recent(camera_id), opts.bucket_ttl_s)
                pipe.hset(self.keys.meta(camera_id), mapping={"model": r.model, "last_ts": repr(r.ts)})
                pipe.expire(self.keys.meta(camera_id), opts.bucket_ttl_s)
            return len(fresh)

        watched = [*by_done_key, *track_keys.values()]
        return int(self.client.transaction(txn, *watched, value_from_callable=True))

    def _load_buckets(self, camera_id: str, window_s: float, now: float) -> tuple[str, list[tuple[int, BucketTotals]]]:
        """Every bucket of the window at its resolution (for series)."""
        resolution, buckets = window_buckets(window_s, now)
        pipe = self.client.pipeline(transaction=False)
        for b in buckets:
            pipe.hgetall(self.keys.bucket(camera_id, resolution, b))
        raw = pipe.execute()
        return resolution, [(b, BucketTotals.from_hash(h)) for b, h in zip(buckets, raw)]

    def _window_totals(self, camera_id: str, window_s: float, now: float) -> BucketTotals:
        """Totals and distinct tracks of the window, from the fewest buckets that cover it."""
        covering = covering_buckets(window_s, now)
        pipe = self.client.pipeline(transaction=False)
        for resolution, b in covering:
            pipe.hgetall(self.keys.bucket(camera_id, resolution, b))
        # One SUNION instead of a SMEMBERS per bucket.
        pipe.sunion([self.keys.bucket_tracks(camera_id, resolution, b) for resolution, b in covering])
        *raw, track_ids = pipe.execute()
        totals = BucketTotals()
        for h in raw:
            totals.merge(BucketTotals.from_hash(h))
        totals.tracks = {int(t) for t in track_ids}
        return totals

    def summary(self, camera_id: str, window_s: float, now: float | None = None) -> Summary:
        """Emotion summary of one camera over the window ending at ``now``.

        Args:
            camera_id: Camera id (a removed camera still has its history).
            window_s: Window length, 1 s … 24 h. Up to 600 s per-second buckets are
                used, beyond that per-minute buckets (window rounded up to whole minutes).
            now: End of the window (Unix seconds); default the current time.

        Raises:
            ValueError: If the window is out of range.
        """
        now = time.time() if now is None else now
        totals = self._window_totals(camera_id, window_s, now)
        track_ids = sorted(totals.tracks)
        pipe = self.client.pipeline(transaction=False)
        for tid in track_ids:
            pipe.hgetall(self.keys.track(camera_id, tid))
        pipe.hget(self.keys.meta(camera_id), "model")
        *raw_states, model = pipe.execute()
        tracks = []
        for tid, raw in zip(track_ids, raw_states):
            state = TrackEma.from_hash(raw)
            if state is not None:
                tracks.append(track_summary(camera_id, tid, state))
        return build_summary(
            camera_id,
            window_s,
            now,
            totals,
            tracks,
            model.decode() if model is not None else None,
            distinct_tracks=len(track_ids),
        )

    def series(self, camera_id: str, window_s: float, now: float | None = None) -> list[SeriesPoint]:
        """Per-bucket time series over the window (seconds up to 600 s, minutes beyond)."""
        now = time.time() if now is None else now
        resolution, buckets = self._load_buckets(camera_id, window_s, now)
        return build_series(resolution, buckets)

    def latency_samples(
        self, camera_id: str | None = None, limit: int = LATENCY_SAMPLES, since: float | None = None
    ) -> list[float]:
        """End-to-end latencies (frame capture -> aggregate committed), seconds, newest first.

        Args:
            camera_id: One camera's samples; None for all cameras together.
            limit: At most this many (the store keeps the newest :data:`LATENCY_SAMPLES`).
            since: Only samples committed at or after this Unix time.
        """
        key = self.keys.latency(camera_id if camera_id is not None else GLOBAL_SCOPE)
        out = []
        for raw in self.client.lrange(key, 0, max(limit, 1) - 1):
            text = raw.decode() if isinstance(raw, bytes) else raw
            committed, _, latency = text.partition(":")
            if since is not None and float(committed) < since:
                break  # newest first: everything further is older
            out.append(float(latency))
        return out

    def newest_result_ts(self, camera_id: str) -> float | None:
        """Capture time of the camera's most recently committed face; None when there is none."""
        raw = self.client.hget(self.keys.meta(camera_id), "last_ts")
        return float(raw) if raw is not None else None

    def recent_results(self, camera_id: str, limit: int = 50) -> list[EmotionResult]:
        """Newest results of a camera, newest first (unreadable entries skipped)."""
        out = []
        for raw in self.client.lrange(self.keys.recent(camera_id), 0, max(limit, 1) - 1):
            try:
                out.append(EmotionResult.decode(raw))
            except ContractError:
                continue
        return out
