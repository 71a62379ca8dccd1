"""CI guard on the SHIPPED classifier weights.

Loads the weights that ship in ``pipeline/classify/weights`` through
:class:`EmotionEngine` on both ONNX Runtime paths (int8, which CPU replicas
serve by default, and fp32) and checks accuracy on the first 1,000 FER2013
validation (PublicTest) faces. A preprocessing
change, a broken export or a swapped weights file shows up here as a drop of
several points, which no shape-only test would notice.

Floors are the value measured when the weights were shipped minus 1.5 points:
the 1,000-face subset is deterministic, so the margin only absorbs numeric
differences between ONNX Runtime / CPU builds, not sampling noise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.engine import WEIGHTS_DIR, EmotionEngine, file_sha256, int8_path
from pipeline.exceptions import ModelError
from pipeline.settings import ClassifySettings
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
FER2013 = Path(os.environ.get("EP_FER2013", REPO.parent / "shared" / "data" / "fer2013.npz"))
N_FACES = 1000

# (model, runtime) -> accuracy measured on the first 1,000 val faces at ship time; floor = that - 1.5 points
MEASURED = {
    ("emonet-m", "onnx"): 0.710, ("emonet-m", "onnx-int8"): 0.707,
    ("emonet-s", "onnx"): 0.697, ("emonet-s", "onnx-int8"): 0.692,
    ("emonet-t", "onnx"): 0.702, ("emonet-t", "onnx-int8"): 0.697,
}
FLOOR = {key: round(acc - 0.015, 3) for key, acc in MEASURED.items()}
SHIPPED = sorted({name for name, _ in MEASURED})


@pytest.fixture(scope="module")
def val_faces() -> tuple[np.ndarray, np.ndarray]:
    """First 1,000 validation faces and labels; skips when the dataset is not beside the repo."""
    if not FER2013.is_file():
        pytest.skip(f"FER2013 npz not found at {FER2013} (set EP_FER2013 to its path)")
    with np.load(FER2013) as data:
        return data["x_val"][:N_FACES], data["y_val"][:N_FACES].astype(np.int64)


@pytest.fixture(scope="module", params=SHIPPED)
def model_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_shipped_model_has_floors_and_a_current_int8_file() -> None:
    # Given the weights directory, when a model is added, then it must get floors here too,
    shipped = {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")}
    assert shipped == set(SHIPPED)
    # and its int8 model must have been made from the weights that ship (re-run `emotionpipe quantize`).
    for name in shipped:
        weights = WEIGHTS_DIR / f"{name}.safetensors"
        card = json.loads(weights.with_suffix(".json").read_text())
        assert int8_path(weights).is_file(), f"{int8_path(weights).name} is missing"
        assert card["int8"]["source_sha256"] == file_sha256(weights), f"{name}: int8 model is stale"


@pytest.mark.parametrize("runtime", ["onnx-int8", "onnx"])
def test_shipped_model_accuracy_above_floor(
    model_name: str, runtime: str, val_faces: tuple[np.ndarray, np.ndarray]
) -> None:
    # Given the shipped weights on a serving runtime
    x, y = val_faces
    engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime=runtime))
    assert engine.runtime == f"{runtime}/cpu"
    # When the first 1,000 validation faces are classified
    probs = engine.predict(x)
    accuracy = float((probs.argmax(axis=1) == y).mean())
    # Then accuracy stays within 1.5 points of the shipped value
    assert probs.shape == (N_FACES, 7)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert engine.name == f"{model_name}@1"
    key = (model_name, runtime)
    assert accuracy >= FLOOR[key], (
        f"{model_name} on {runtime}: accuracy {accuracy:.3f} on {N_FACES} val faces fell below the floor "
        f"{FLOOR[key]:.3f} (measured {MEASURED[key]:.3f} at ship time)"
    )


def test_int8_and_fp32_pick_the_same_label(model_name: str, val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    # Given the int8 and fp32 models of the same weights
    x = val_faces[0]
    int8 = EmotionEngine.load(ClassifySettings(model=model_name, runtime="onnx-int8"))
    fp32 = EmotionEngine.load(ClassifySettings(model=model_name, runtime="onnx"))
    # When both classify the same faces
    agree = float((int8.predict(x).argmax(1) == fp32.predict(x).argmax(1)).mean())
    # Then quantisation changes the label of only a few faces (measured 98.5-99.3 % agreement on all 3,589)
    assert agree >= 0.97, f"int8 and fp32 agree on only {agree:.1%} of faces"


def test_onnx_and_torch_runtimes_agree(model_name: str, val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    # Given the same weights loaded on both runtimes
    x = val_faces[0][:256]
    onnx_engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime="onnx"))
    torch_engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime="torch"))
    # When both classify the same faces
    diff = np.abs(onnx_engine.predict(x) - torch_engine.predict(x)).max()
    # Then the exported graph computes the same function as the PyTorch reference
    assert diff < 1e-3, f"onnx and torch disagree by {diff:.2e}"


def test_eval_against_compares_two_models_on_the_same_faces(val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    # Given emonet-s, and emonet-m as the model to compare with (one by name, one as a weights path)
    x, y = val_faces
    expected = {name: EmotionEngine.load(ClassifySettings(model=name)).predict(x[:300]).argmax(1) == y[:300]
                for name in ("emonet-s", "emonet-m")}
    for against in ("emonet-m", str(WEIGHTS_DIR / "emonet-m.safetensors")):
        # When eval runs with --against
        run = run_cli("eval", "--data", str(FER2013), "--model", "emonet-s", "--against", against,
                      "--limit", "300", "--json")
        # Then the comparison counts the faces only one of them labels right, as each model alone does
        assert run.code == 0, run.stderr
        out = json.loads(run.stdout)
        paired = out["against"]
        assert paired["model"] == "emonet-m@1" and paired["n"] == 300
        assert paired["accuracy_a"] == out["accuracy"] == pytest.approx(expected["emonet-s"].mean())
        assert paired["accuracy_b"] == pytest.approx(expected["emonet-m"].mean())
        assert paired["only_a"] == int((expected["emonet-s"] & ~expected["emonet-m"]).sum())
        assert paired["only_b"] == int((expected["emonet-m"] & ~expected["emonet-s"]).sum())
        assert 0 < paired["p_value"] <= 1 and paired["std_error"] > 0
    # and the text form says the same in words
    run = run_cli("eval", "--data", str(FER2013), "--model", "emonet-s", "--against", "emonet-m", "--limit", "300")
    assert f"only with emonet-m@1: {paired['only_b']}" in run.stdout


def test_eval_against_an_unknown_model_is_a_usage_error(val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    run = run_cli("eval", "--data", str(FER2013), "--against", "emonet-zz", "--limit", "10")
    assert run.code == 2 and "unknown model 'emonet-zz'" in run.stderr
    run = run_cli("eval", "--data", str(FER2013), "--against", "emonet-s", "--through-detector", "--limit", "10")
    assert run.code == 2 and "leave out --through-detector" in run.stderr


def test_tta_averages_a_face_with_its_mirror() -> None:
    # Given random faces and their mirror images
    faces = np.random.default_rng(3).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    plain = EmotionEngine.load(ClassifySettings(model="emonet-s", runtime="onnx"))
    tta = EmotionEngine.load(ClassifySettings(model="emonet-s", runtime="onnx", tta=True))
    # Then with TTA a face and its mirror get the same probabilities (the mean of both plain predictions)
    np.testing.assert_allclose(tta.predict(faces), tta.predict(mirrored), atol=1e-5)
    expected = (plain.logits(faces) + plain.logits(mirrored)) / 2
    np.testing.assert_allclose(tta.logits(faces), expected, atol=1e-5)
    assert not np.allclose(plain.predict(faces), plain.predict(mirrored), atol=1e-3)


def _copy_model(tmp_path: Path, name: str = "emonet-s", card: bool = True, int8: bool = False) -> Path:
    weights = tmp_path / f"{name}.safetensors"
    shutil.copyfile(WEIGHTS_DIR / f"{name}.safetensors", weights)
    if card:
        shutil.copyfile(WEIGHTS_DIR / f"{name}.json", weights.with_suffix(".json"))
    if int8:
        shutil.copyfile(int8_path(WEIGHTS_DIR / f"{name}.safetensors"), int8_path(weights))
    return weights


def test_int8_file_made_from_other_weights_is_refused(tmp_path: Path) -> None:
    # Given an int8 file beside weights it was not made from (weights retrained, quantize not re-run)
    weights = _copy_model(tmp_path, int8=True)
    assert EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx-int8")).runtime == "onnx-int8/cpu"
    card = weights.with_suffix(".json")
    raw = json.loads(card.read_text())
    raw["int8"]["source_sha256"] = "0" * 64
    card.write_text(json.dumps(raw))
    # When the int8 runtime loads it, then the stale file is refused with the fix in the message
    with pytest.raises(ModelError, match="not made from .*emotionpipe quantize"):
        EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx-int8"))


def test_missing_int8_file_serves_fp32_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Given custom weights with no int8 model beside them
    weights = _copy_model(tmp_path)
    # When the default (int8) runtime loads them
    with caplog.at_level(logging.WARNING, logger="pipeline.classify.engine"):
        engine = EmotionEngine.load(ClassifySettings(weights=weights))
    # Then it serves fp32 and the log says how to make the int8 model
    assert engine.runtime == "onnx/cpu"
    assert "emotionpipe quantize" in caplog.text


def test_corrupted_weights_raise_model_error(tmp_path: Path) -> None:
    # Given a weights file whose bytes were overwritten (a truncated download or bad disk)
    weights = _copy_model(tmp_path)
    weights.write_bytes(b"\x00garbage" * 64)
    # When it is loaded, then a ModelError names the file instead of a raw safetensors/torch error
    with pytest.raises(ModelError, match=r"cannot load .*emonet-s\.safetensors"):
        EmotionEngine.load(ClassifySettings(weights=weights))


def test_truncated_weights_raise_model_error(tmp_path: Path) -> None:
    # Given a weights file cut in half
    weights = _copy_model(tmp_path)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    # Then loading fails with a ModelError
    with pytest.raises(ModelError, match="cannot load"):
        EmotionEngine.load(ClassifySettings(weights=weights))


def test_weights_for_another_architecture_raise_model_error(tmp_path: Path) -> None:
    # Given emonet-s weights behind a card that claims emonet-m
    weights = _copy_model(tmp_path)
    card = weights.with_suffix(".json")
    card.write_text(card.read_text().replace('"arch": "emonet-s"', '"arch": "emonet-m"'))
    # Then the shape mismatch is reported as a ModelError naming the architecture
    with pytest.raises(ModelError, match="as emonet-m"):
        EmotionEngine.load(ClassifySettings(weights=weights))


def test_missing_card_raises_model_error(tmp_path: Path) -> None:
    # Given weights without their .json model card
    weights = _copy_model(tmp_path, card=False)
    # Then the error says the card is missing and why it matters
    with pytest.raises(ModelError, match=r"model card .*emonet-s\.json is missing"):
        EmotionEngine.load(ClassifySettings(weights=weights))


def test_invalid_card_raises_model_error(tmp_path: Path) -> None:
    # Given a card without the architecture field
    weights = _copy_model(tmp_path)
    weights.with_suffix(".json").write_text('{"name": "emonet-s", "version": 1}')
    with pytest.raises(ModelError, match="invalid"):
        EmotionEngine.load(ClassifySettings(weights=weights))


def test_missing_weights_raise_model_error(tmp_path: Path) -> None:
    # Given a card whose weights file is absent
    weights = _copy_model(tmp_path)
    weights.unlink()
    with pytest.raises(ModelError, match="not found"):
        EmotionEngine.load(ClassifySettings(weights=weights))
