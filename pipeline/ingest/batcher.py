"""One detection request for the frames a reader's cameras sample at the same moment.

Every request to the ``FaceDetector`` deployment pays a fixed cost on both sides (Serve's
routing, (de)serialisation, metrics, a Redis round trip to publish), about as much as
detecting a tracked face. The cameras of a reader sample on a common clock (ticks aligned to
multiples of their period), so their frames arrive within a millisecond of each other; the
batcher holds each for at most ``window_s`` and sends them together.

Plain asyncio, testable without Ray: ``send(frames, metas, tracks)`` is any coroutine-like
callable returning one result per frame, where an ``Exception`` instance fails that frame only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

SendBatch = Callable[[list[Any], list[Any], list[Any]], Awaitable[list[Any]]]

WINDOW_S = 0.01


class DetectBatcher:
    """Gathers ``detect(frame, meta, tracks)`` calls made within ``window_s`` into one ``send``.

    Args:
        send: Sends a batch; returns one result per frame (an ``Exception`` fails that frame).
        window_s: How long the first frame of a batch waits for others.
        max_batch: A batch this full is sent at once.
    """

    def __init__(self, send: SendBatch, *, window_s: float = WINDOW_S, max_batch: int = 16) -> None:
        self._send = send
        self._window_s = window_s
        self._max_batch = max(1, max_batch)
        self._pending: list[tuple[Any, Any, Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def detect(self, frame: Any, meta: Any, tracks: Any) -> asyncio.Future[Any]:
        """Queue one frame; the future resolves with its result. Call from the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((frame, meta, tracks, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window_s, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._deliver(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, batch: list[tuple[Any, Any, Any, asyncio.Future[Any]]]) -> None:
        futures = [f for *_, f in batch]
        try:
            results = await self._send([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"detector answered {len(results)} results for {len(batch)} frames")
        except Exception as exc:  # the whole request failed: every frame of it did
            for future in futures:
                if not future.done():  # a camera may have given up on it (timeout, stop)
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
