"""The reader's detection batcher: frames sampled together go as one request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.ingest.batcher import DetectBatcher


class Detector:
    def __init__(self, fail_on: set[str] = frozenset(), down: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail_on, self.down = fail_on, down

    async def send(self, frames: list[Any], metas: list[Any], tracks: list[Any]) -> list[Any]:
        self.calls.append(list(metas))
        await asyncio.sleep(0.01)
        if self.down:
            raise ConnectionError("detector down")
        return [ValueError(f"bad {m}") if m in self.fail_on else f"result {m} {t}" for m, t in zip(metas, tracks)]


def test_calls_within_the_window_share_one_request_and_get_their_own_results() -> None:
    async def main() -> None:
        det = Detector(fail_on={"b"})
        batcher = DetectBatcher(det.send, window_s=0.02, max_batch=8)
        futures = [batcher.detect("frame", m, i) for i, m in enumerate("abc")]
        assert await futures[0] == "result a 0" and await futures[2] == "result c 2"
        with pytest.raises(ValueError, match="bad b"):
            await futures[1]
        assert det.calls == [["a", "b", "c"]]
        # later calls make a new request
        assert await batcher.detect("frame", "d", 3) == "result d 3"
        assert det.calls[-1] == ["d"]

    asyncio.run(main())


def test_a_full_batch_goes_at_once_and_a_failed_request_fails_each_frame() -> None:
    async def main() -> None:
        det = Detector()
        batcher = DetectBatcher(det.send, window_s=10.0, max_batch=2)
        assert await asyncio.wait_for(asyncio.gather(batcher.detect(1, "a", 0), batcher.detect(2, "b", 0)), 1.0)
        down = DetectBatcher(Detector(down=True).send, window_s=0.001)
        results = await asyncio.gather(down.detect(1, "a", 0), down.detect(2, "b", 0), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)

    asyncio.run(main())


def test_a_frame_given_up_on_does_not_break_the_batch() -> None:
    async def main() -> None:
        det = Detector()
        batcher = DetectBatcher(det.send, window_s=0.001)
        abandoned, kept = batcher.detect(1, "a", 0), batcher.detect(2, "b", 0)
        abandoned.cancel()  # a camera's detect timeout or stop
        assert await kept == "result b 0"

    asyncio.run(main())
