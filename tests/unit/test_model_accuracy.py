"""CI guard on the SHIPPED classifier weights.

Loads the weights that ship in ``pipeline/classify/weights`` through
:class:`EmotionEngine` (the ONNX Runtime path serving uses) and checks accuracy
on the first 1,000 FER2013 validation (PublicTest) faces. A preprocessing
change, a broken export or a swapped weights file shows up here as a drop of
several points, which no shape-only test would notice.

Floors are the value measured when the weights were shipped minus 1.5 points:
the 1,000-face subset is deterministic, so the margin only absorbs numeric
differences between ONNX Runtime / CPU builds, not sampling noise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.engine import WEIGHTS_DIR, EmotionEngine
from pipeline.exceptions import ModelError
from pipeline.settings import ClassifySettings

REPO = Path(__file__).resolve().parents[2]
FER2013 = Path(os.environ.get("EP_FER2013", REPO.parent / "shared" / "data" / "fer2013.npz"))
N_FACES = 1000

# model -> (accuracy measured on the first 1,000 val faces at ship time, floor)
MEASURED = {"emonet-m": 0.710, "emonet-s": 0.697}
FLOOR = {name: round(acc - 0.015, 3) for name, acc in MEASURED.items()}


@pytest.fixture(scope="module")
def val_faces() -> tuple[np.ndarray, np.ndarray]:
    """First 1,000 validation faces and labels; skips when the dataset is not beside the repo."""
    if not FER2013.is_file():
        pytest.skip(f"FER2013 npz not found at {FER2013} (set EP_FER2013 to its path)")
    with np.load(FER2013) as data:
        return data["x_val"][:N_FACES], data["y_val"][:N_FACES].astype(np.int64)


@pytest.fixture(scope="module", params=sorted(MEASURED))
def model_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_shipped_model_has_a_floor() -> None:
    # Given the weights directory, when a model is added, then it must get a floor here too.
    shipped = {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")}
    assert shipped == set(MEASURED)


def test_shipped_model_accuracy_above_floor(model_name: str, val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    # Given the shipped weights on the serving runtime
    x, y = val_faces
    engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime="onnx"))
    # When the first 1,000 validation faces are classified
    probs = engine.predict(x)
    accuracy = float((probs.argmax(axis=1) == y).mean())
    # Then accuracy stays within 1.5 points of the shipped value
    assert probs.shape == (N_FACES, 7)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert engine.name == f"{model_name}@1"
    assert accuracy >= FLOOR[model_name], (
        f"{model_name} accuracy {accuracy:.3f} on {N_FACES} val faces fell below the floor {FLOOR[model_name]:.3f} "
        f"(measured {MEASURED[model_name]:.3f} at ship time)"
    )


def test_onnx_and_torch_runtimes_agree(model_name: str, val_faces: tuple[np.ndarray, np.ndarray]) -> None:
    # Given the same weights loaded on both runtimes
    x = val_faces[0][:256]
    onnx_engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime="onnx"))
    torch_engine = EmotionEngine.load(ClassifySettings(model=model_name, runtime="torch"))
    # When both classify the same faces
    diff = np.abs(onnx_engine.predict(x) - torch_engine.predict(x)).max()
    # Then the exported graph computes the same function as the PyTorch reference
    assert diff < 1e-3, f"onnx and torch disagree by {diff:.2e}"


def _copy_model(tmp_path: Path, name: str = "emonet-s", card: bool = True) -> Path:
    weights = tmp_path / f"{name}.safetensors"
    shutil.copyfile(WEIGHTS_DIR / f"{name}.safetensors", weights)
    if card:
        shutil.copyfile(WEIGHTS_DIR / f"{name}.json", weights.with_suffix(".json"))
    return weights


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
