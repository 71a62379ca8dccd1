"""The classifier's consume loop: faces stream → engine → aggregates, as a plain class.

One :class:`FaceConsumer` per process (Serve replica). Each :meth:`FaceConsumer.run_once`:

1. reclaims entries pending longer than ``claim_idle_ms`` (a dead replica's work, or
   this one's failed batch) and dead-letters those delivered more than
   ``max_deliveries`` times;
2. fills the batch with new entries (XREADGROUP, blocking ``block_ms`` only when idle);
3. dead-letters undecodable payloads (garbage, wrong schema version) and keeps going;
4. classifies the rest in one ``engine.predict`` call;
5. records results, acknowledges and counts them in one transaction (idempotent per id).

An engine error leaves the batch pending, so it is retried after ``claim_idle_ms`` and
dead-lettered if it keeps failing: a poison crop cannot stall the stream forever.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from pipeline.classify.backends import ClassifierBackend
from pipeline.classify.exceptions import EngineOutputError
from pipeline.classify.preprocess import INPUT_SIZE
from pipeline.common.backoff import backoff_delay
from pipeline.contracts import LABELS, EmotionResult, FaceCrop
from pipeline.exceptions import ContractError
from pipeline.settings import ClassifySettings

log = logging.getLogger(__name__)

Entry = tuple[bytes, bytes]  # (stream entry id, FaceCrop payload)


class FaceQueue(Protocol):
    """The part of :class:`pipeline.store.redis_store.RedisStore` the consume loop needs.

    Every method may raise :class:`pipeline.store.exceptions.StoreError`.
    """

    def ensure_group(self) -> None: ...

    def read_faces(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]: ...

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]: ...

    def delivery_counts(self, ids: list[bytes]) -> dict[bytes, int]: ...

    def dead_letter(self, msg_id: bytes, payload: bytes, reason: str, camera_id: str | None = None) -> None: ...

    def record_results(
        self, results: list[EmotionResult], msg_ids: list[bytes], *, inference_s: float | None = None
    ) -> int: ...

    def trim_acked(self) -> int: ...

    def prune_consumers(self, min_idle_ms: int) -> int: ...


@dataclass
class ConsumerStats:
    """Counters of one consumer since it started."""

    batches: int = 0
    classified: int = 0
    recorded: int = 0
    duplicates: int = 0
    claimed: int = 0
    dead_lettered: int = 0
    errors: int = 0
    trimmed: int = 0
    last_batch_size: int = 0
    last_batch_ms: float = 0.0
    last_error: str = ""


def _to_input_size(crop: FaceCrop) -> np.ndarray:
    img = np.frombuffer(crop.crop, dtype=np.uint8).reshape(crop.crop_shape)
    if img.shape == (INPUT_SIZE, INPUT_SIZE):
        return img
    import cv2  # only for producers configured with another crop size

    interp = cv2.INTER_AREA if min(img.shape) > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


class FaceConsumer:
    """Consumes FaceCrop messages in batches and records EmotionResults.

    Args:
        store: The faces stream and the aggregates (the Redis store).
        engine: The classifier backend (``predict((N,48,48) uint8) -> (N,7)``; ``name`` is recorded).
        settings: Batch size, block time, reclaim and dead-letter thresholds.
        consumer_name: Unique name in the consumer group (the Serve replica id).
        trim_interval_s: How often the acknowledged head of the stream is trimmed.
        claim_interval_s: How often stale pending entries are looked for.
    """

    def __init__(
        self,
        store: FaceQueue,
        engine: ClassifierBackend,
        settings: ClassifySettings,
        consumer_name: str,
        *,
        trim_interval_s: float = 1.0,
        claim_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.settings = settings
        self.name = consumer_name
        self.stats = ConsumerStats()
        self._trim_interval_s = trim_interval_s
        self._claim_interval_s = claim_interval_s
        self._last_trim = 0.0
        self._last_claim = float("-inf")
        self._group_ready = False

    # -- one iteration ---------------------------------------------------------------
    def run_once(self) -> int:
        """Process at most one batch.

        Returns:
            Number of faces classified (dead-lettered entries not included).

        Raises:
            Exception: Whatever the engine or Redis raised; the batch stays pending.
        """
        if not self._group_ready:
            self.store.ensure_group()
            self._group_ready = True
        batch = self.settings.batch_size
        entries = self._claim()
        if len(entries) < batch:
            # Only wait for new work when there is nothing to do already.
            block = None if entries else self.settings.block_ms
            entries += self.store.read_faces(self.name, batch - len(entries), block)
        self._maybe_trim()
        if not entries:
            return 0

        started = time.perf_counter()
        crops: list[FaceCrop] = []
        ids: list[bytes] = []
        for msg_id, payload in entries:
            try:
                crop = FaceCrop.decode(payload)
            except ContractError as exc:
                self.store.dead_letter(msg_id, payload, f"contract: {exc}")
                self.stats.dead_lettered += 1
                continue
            crops.append(crop)
            ids.append(msg_id)
        if not crops:
            return 0

        infer_started = time.perf_counter()
        probs = self._predict(crops)
        inference_s = time.perf_counter() - infer_started  # issue 4: /metrics inference histogram
        results = [
            EmotionResult(
                camera_id=c.camera_id,
                frame_id=c.frame_id,
                ts=c.ts,
                face_idx=c.face_idx,
                bbox=c.bbox,
                probs=tuple(float(p) for p in row),
                model=self.engine.name,
                track_id=c.track_id,
            )
            for c, row in zip(crops, probs)
        ]
        recorded = self.store.record_results(results, ids, inference_s=inference_s)

        self.stats.batches += 1
        self.stats.classified += len(results)
        self.stats.recorded += recorded
        self.stats.duplicates += len(results) - recorded
        self.stats.last_batch_size = len(results)
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000.0
        return len(results)

    def _claim(self) -> list[tuple[bytes, bytes]]:
        now = time.monotonic()
        if now - self._last_claim < self._claim_interval_s:
            return []
        self._last_claim = now
        claimed = self.store.claim_stale(self.name, self.settings.claim_idle_ms, self.settings.batch_size)
        if not claimed:
            return []
        self.stats.claimed += len(claimed)
        counts = self.store.delivery_counts([i for i, _ in claimed])
        keep = []
        for msg_id, payload in claimed:
            n = counts.get(msg_id)
            if n is None:
                continue  # acknowledged by its first consumer meanwhile
            if n > self.settings.max_deliveries:
                self._dead_letter(msg_id, payload, f"delivered {n} times (max {self.settings.max_deliveries})")
            else:
                keep.append((msg_id, payload))
        log.info("consumer %s reclaimed %d stale entries", self.name, len(keep))
        return keep

    def _predict(self, crops: list[FaceCrop]) -> np.ndarray:
        stack = np.stack([_to_input_size(c) for c in crops]).astype(np.uint8, copy=False)
        probs = np.asarray(self.engine.predict(stack), dtype=np.float64)
        if probs.shape != (len(crops), len(LABELS)) or not np.all(np.isfinite(probs)):
            raise EngineOutputError(
                f"engine {self.engine.name} returned {probs.shape}, expected {(len(crops), len(LABELS))} finite"
            )
        return probs

    def _dead_letter(self, msg_id: bytes, payload: bytes, reason: str) -> None:
        # Decodable poison (e.g. a crop that crashes the engine) is counted on its camera.
        camera_id = None
        try:
            camera_id = FaceCrop.decode(payload).camera_id
        except ContractError:
            pass
        self.store.dead_letter(msg_id, payload, reason, camera_id=camera_id)
        self.stats.dead_lettered += 1

    def _maybe_trim(self) -> None:
        now = time.monotonic()
        if now - self._last_trim < self._trim_interval_s:
            return
        self._last_trim = now
        self.stats.trimmed += self.store.trim_acked()
        # Forget replicas gone long ago (they hold nothing; XAUTOCLAIM took their work).
        self.store.prune_consumers(max(20 * self.settings.claim_idle_ms, 300_000))

    # -- loop ----------------------------------------------------------------------
    def run_forever(self, stop_event: threading.Event, max_backoff_s: float = 5.0) -> None:
        """Call :meth:`run_once` until ``stop_event`` is set.

        Errors (Redis down, engine failure) are logged and retried with exponential
        backoff: the loop must outlive a Redis restart. Idle waiting happens inside
        XREADGROUP's block, so the loop stops within ``block_ms`` of the event.
        """
        failures = 0
        log.info("consumer %s started (batch %d)", self.name, self.settings.batch_size)
        while not stop_event.is_set():
            try:
                self.run_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the loop must survive any one batch
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._group_ready = False  # Redis may have restarted empty
                delay = backoff_delay(failures, 0.1, max_backoff_s)
                failures += 1
                log.exception("consumer %s: batch failed, retrying in %.1fs", self.name, delay)
                stop_event.wait(delay)
        log.info("consumer %s stopped", self.name)

    def snapshot(self) -> dict[str, float | int | str]:
        """Counters as a plain dict."""
        return asdict(self.stats)
