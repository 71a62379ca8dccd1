"""Message contracts: round trips, version rejection, garbage never escapes as anything but ContractError."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contracts import LABELS, SCHEMA_VERSION, EmotionResult, FaceCrop
from pipeline.exceptions import ContractError


def make_crop(**overrides: object) -> FaceCrop:
    fields: dict[str, object] = dict(
        camera_id="cam-1",
        frame_id=42,
        ts=1_700_000_000.25,
        face_idx=1,
        bbox=(10, 20, 30, 40),
        det_score=0.97,
        crop=bytes(range(256)) * 9,
        crop_shape=(48, 48),
        track_id=7,
    )
    fields.update(overrides)
    return FaceCrop(**fields)  # type: ignore[arg-type]


def make_result(**overrides: object) -> EmotionResult:
    fields: dict[str, object] = dict(
        camera_id="cam-1",
        frame_id=42,
        ts=1_700_000_000.25,
        face_idx=0,
        bbox=(1, 2, 3, 4),
        probs=(0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05),
        model="emonet-s@1",
        track_id=None,
    )
    fields.update(overrides)
    return EmotionResult(**fields)  # type: ignore[arg-type]


def repack(data: bytes, **changes: object) -> bytes:
    payload = msgpack.unpackb(data, raw=False)
    payload.update(changes)
    return msgpack.packb(payload, use_bin_type=True)


def test_face_crop_round_trip() -> None:
    # given a crop with every field set
    crop = make_crop()
    # when it is encoded and decoded
    back = FaceCrop.decode(crop.encode())
    # then nothing changed
    assert back == crop
    assert back.v == SCHEMA_VERSION


def test_face_crop_round_trip_without_track() -> None:
    crop = make_crop(track_id=None)
    assert FaceCrop.decode(crop.encode()) == crop


def test_emotion_result_round_trip_and_label() -> None:
    result = make_result()
    back = EmotionResult.decode(result.encode())
    assert back == result
    assert back.label == "happy"
    assert len(back.probs) == len(LABELS)


@pytest.mark.parametrize("version", [0, 2, SCHEMA_VERSION + 1, "1", None])
def test_unknown_version_is_rejected(version: object) -> None:
    # given a valid message whose version field was changed
    data = repack(make_crop().encode(), v=version)
    # then decoding refuses it with a ContractError naming the version
    with pytest.raises(ContractError, match="version"):
        FaceCrop.decode(data)
    with pytest.raises(ContractError, match="version"):
        EmotionResult.decode(repack(make_result().encode(), v=version))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\xff\x00\x13garbage",
        msgpack.packb([1, 2, 3]),
        msgpack.packb("a string"),
        msgpack.packb({1: 2}),  # non-string keys
        msgpack.packb({"v": SCHEMA_VERSION}),  # right version, nothing else
    ],
)
def test_garbage_is_a_contract_error(data: bytes) -> None:
    with pytest.raises(ContractError):
        FaceCrop.decode(data)
    with pytest.raises(ContractError):
        EmotionResult.decode(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"crop": b"\x00" * 10},  # wrong size for 48x48
        {"crop_shape": [48]},
        {"crop_shape": [0, 48]},
        {"bbox": [1, 2, 3]},
        {"bbox": [1, 2, 3, "4"]},
        {"frame_id": -1},
        {"frame_id": True},
        {"camera_id": ""},
        {"ts": math.nan},
        {"track_id": "7"},
        {"det_score": "high"},
    ],
)
def test_invalid_fields_are_contract_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ContractError):
        FaceCrop.decode(repack(make_crop().encode(), **changes))


def test_result_with_wrong_prob_count_is_rejected() -> None:
    with pytest.raises(ContractError):
        EmotionResult.decode(repack(make_result().encode(), probs=[0.5, 0.5]))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_contract_error(data: bytes) -> None:
    try:
        FaceCrop.decode(data)
    except ContractError:
        pass


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=64),
)
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
_fields = st.sampled_from(
    ["v", "camera_id", "frame_id", "ts", "face_idx", "bbox", "det_score", "crop", "crop_shape", "track_id", "zzz"]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_fields, _value, max_size=11), st.booleans())
def test_structured_fuzz_only_raises_contract_error(fields: dict[str, object], keep_valid_base: bool) -> None:
    # given a valid crop with some fields replaced by arbitrary msgpack values (or only those fields)
    base = msgpack.unpackb(make_crop().encode(), raw=False) if keep_valid_base else {}
    base.update(fields)
    data = msgpack.packb(base, use_bin_type=True)
    # then decoding either succeeds or raises ContractError, never anything else
    try:
        crop = FaceCrop.decode(data)
    except ContractError:
        return
    assert len(crop.crop) == crop.crop_shape[0] * crop.crop_shape[1]
