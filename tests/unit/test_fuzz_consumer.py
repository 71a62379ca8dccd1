"""Property test: whatever lands on the faces stream, the real consumer on a real Redis keeps
going, and every entry ends up either classified or dead-lettered (counted), never lost or stuck.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.classify.consumer import FaceConsumer
from pipeline.contracts import LABELS, FaceCrop
from pipeline.settings import ClassifySettings
from pipeline.store.keys import GLOBAL_SCOPE, PAYLOAD_FIELD
from pipeline.store.redis_store import RedisStore

VALID = FaceCrop(
    camera_id="cam-f", frame_id=1, ts=1_700_000_000.0, face_idx=0, bbox=(0, 0, 48, 48), det_score=0.9,
    crop=bytes(48 * 48), crop_shape=(48, 48), track_id=None,
).encode()


class Engine:
    name = "fuzz@1"

    def predict(self, crops: np.ndarray) -> np.ndarray:
        return np.full((len(crops), len(LABELS)), 1 / len(LABELS), dtype=np.float32)


def _mutate(data: bytes, i: int, value: int) -> bytes:
    b = bytearray(data)
    b[i % len(b)] = value
    return bytes(b)


payloads = st.one_of(
    st.just(VALID),
    st.binary(max_size=200),  # garbage
    st.builds(_mutate, st.just(VALID), st.integers(0, 10_000), st.integers(0, 255)),  # damaged
    st.builds(lambda n: VALID[:n], st.integers(0, len(VALID) - 1)),  # truncated
    st.builds(  # wrong version / missing or extra fields
        lambda drop, v: msgpack.packb(
            {k: x for k, x in (msgpack.unpackb(VALID, raw=False) | {"v": v}).items() if k != drop},
            use_bin_type=True,
        ),
        st.sampled_from(["", "camera_id", "crop", "crop_shape", "ts", "bbox"]),
        st.one_of(st.integers(-2, 1000), st.text(max_size=3), st.none()),
    ),
    st.none(),  # an entry without the payload field at all
)


@pytest.fixture(scope="module")
def redis_url_shared(redis_server: Any) -> Iterator[str]:
    yield redis_server.url


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(payloads, min_size=1, max_size=20))
def test_every_entry_is_classified_or_dead_lettered(redis_url_shared: str, entries: list[bytes | None]) -> None:
    store = RedisStore.from_url(redis_url_shared, f"fz{uuid.uuid4().hex[:8]}:")
    try:
        # Given a mix of valid, garbage, damaged, truncated and wrong-version entries
        store.ensure_group()
        for payload in entries:
            fields = {PAYLOAD_FIELD: payload} if payload is not None else {b"other": b"x"}
            store.client.xadd(store.keys.faces, fields)
        consumer = FaceConsumer(store, Engine(), ClassifySettings(batch_size=7, block_ms=1), "fuzz")
        # When the consumer runs until the stream is drained (it must never raise)
        for _ in range(len(entries) + 2):
            if store.queue_lag() == 0:
                break
            consumer.run_once()
        # Then each entry is either classified or dead-lettered, and nothing is left pending
        dead = int(store.get_counters(GLOBAL_SCOPE).get("dead_letter", 0))
        assert consumer.stats.classified + dead == len(entries)
        assert consumer.stats.dead_lettered == dead == len(store.dead_letters(1000))
        assert store.queue_lag() == 0
    finally:
        keys = list(store.client.scan_iter(match=f"{store.keys.prefix}*"))
        if keys:
            store.client.delete(*keys)
        store.close()
