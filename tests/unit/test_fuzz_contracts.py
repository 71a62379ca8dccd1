"""Property tests: the stream decoders turn any damaged payload into ContractError, nothing else.

Complements tests/unit/test_contracts.py (random bytes, structured field fuzz) with byte-level
damage of *valid* payloads (bit flips, truncation, splices), for both message types, and checks
that whatever decodes still satisfies the contract's invariants. A poison message that escaped
as another exception would crash the consumer's batch instead of going to the dead-letter stream.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contracts import LABELS, EmotionResult, FaceCrop
from pipeline.exceptions import ContractError

CROP = FaceCrop(
    camera_id="cam-1", frame_id=42, ts=1_700_000_000.25, face_idx=1, bbox=(10, 20, 30, 40), det_score=0.97,
    crop=bytes(range(256)) * 9, crop_shape=(48, 48), track_id=7,
)
RESULT = EmotionResult(
    camera_id="cam-1", frame_id=42, ts=1_700_000_000.25, face_idx=0, bbox=(1, 2, 3, 4),
    probs=(0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05), model="emonet-s@1", track_id=None,
)
VALID = {"crop": CROP.encode(), "result": RESULT.encode()}


@st.composite
def damaged(draw: st.DrawFn, kind: str) -> bytes:
    """A valid payload with 1-4 random edits: bit flips, byte overwrites, cuts, insertions."""
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i:]
    return bytes(data)


def _check_crop_invariants(crop: FaceCrop) -> None:
    assert crop.camera_id and isinstance(crop.camera_id, str)
    assert crop.frame_id >= 0 and math.isfinite(crop.ts)
    assert len(crop.bbox) == 4 and len(crop.crop_shape) == 2
    assert len(crop.crop) == crop.crop_shape[0] * crop.crop_shape[1]


@settings(max_examples=500, deadline=None)
@given(damaged("crop"))
def test_damaged_face_crops_raise_only_contract_error(data: bytes) -> None:
    try:
        crop = FaceCrop.decode(data)
    except ContractError:
        return
    _check_crop_invariants(crop)  # damage that still decodes yields a well-formed crop


@settings(max_examples=500, deadline=None)
@given(damaged("result"))
def test_damaged_results_raise_only_contract_error(data: bytes) -> None:
    try:
        result = EmotionResult.decode(data)
    except ContractError:
        return
    assert len(result.probs) == len(LABELS)
    assert result.camera_id and result.frame_id >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_as_results_raise_only_contract_error(data: bytes) -> None:
    try:
        EmotionResult.decode(data)
    except ContractError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["crop", "result"]), st.integers(0, 10_000))
def test_every_truncation_of_a_valid_payload_is_rejected(kind: str, cut: int) -> None:
    data = VALID[kind]
    cut %= len(data)  # strictly shorter than the valid payload
    decode = FaceCrop.decode if kind == "crop" else EmotionResult.decode
    try:
        decode(data[:cut])
    except ContractError:
        return
    raise AssertionError(f"a {kind} truncated to {cut}/{len(data)} bytes decoded")
