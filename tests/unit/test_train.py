"""Training loop, augmentation and metrics on tiny data (CPU, a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.classify.metrics import classification_report
from pipeline.classify.model import ARCHITECTURES, build_model, count_macs
from pipeline.classify.preprocess import normalise
from pipeline.train.augment import AugmentConfig, augment, cutmix
from pipeline.train.cli import main as train_main
from pipeline.train.trainer import load_checkpoint_model, to_input


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Two separable "expressions": bright upper half vs bright lower half, plus noise.
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n) * 3  # angry (0) vs happy (3)
        x = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
        x[y == 0, :24] += 150
        x[y == 3, 24:] += 150
        return x, y.astype(np.uint8)

    x_tr, y_tr = make(256)
    x_va, y_va = make(128)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va)
    return path


def test_metrics_match_hand_computed_values() -> None:
    y_true = np.array([0, 0, 3, 3, 3, 6])
    y_pred = np.array([0, 3, 3, 3, 6, 6])
    rep = classification_report(y_true, y_pred)
    assert rep.accuracy == pytest.approx(4 / 6)
    assert rep.recall["angry"] == pytest.approx(0.5)
    assert rep.recall["happy"] == pytest.approx(2 / 3)
    assert rep.precision["neutral"] == pytest.approx(0.5)
    assert rep.confusion[3][6] == 1 and sum(map(sum, rep.confusion)) == 6


def test_normalise_matches_training_transform() -> None:
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    served = normalise(faces)
    trained = to_input(torch.from_numpy(faces)).numpy()
    np.testing.assert_allclose(served, trained, atol=1e-6)
    with pytest.raises(ValueError, match="48"):
        normalise(faces[:, :40])


def test_augmentation_keeps_shape_and_changes_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 48, 48)
    out = augment(x, AugmentConfig(), gen)
    assert out.shape == x.shape and not torch.allclose(out, x)
    y = torch.arange(16)
    mixed, ya, yb, lam = cutmix(out, y, AugmentConfig(mix_p=1.0), gen)
    assert mixed.shape == x.shape and 0.0 <= lam <= 1.0 and ya.shape == yb.shape


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_output_seven_logits(arch: str) -> None:
    model = build_model(arch).eval()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    assert count_macs(model) > 1_000_000


def test_train_checkpoints_resume_and_distil(tiny_npz: Path, tmp_path: Path) -> None:
    # Given a tiny separable dataset, when training 3 epochs on CPU,
    common = ["--data", str(tiny_npz), "--arch", "emonet-t", "--batch-size", "32", "--threads", "1"]
    run = tmp_path / "run"
    assert train_main([*common, "--epochs", "2", "--out", str(run), "--lr", "0.02"]) == 0
    # then every epoch is checkpointed and the best model is reloadable.
    assert (run / "last.pt").exists() and (run / "best.pt").exists()
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]

    # Resuming with the same schedule continues from the stored epoch, not from scratch.
    ckpt = torch.load(run / "last.pt", weights_only=False)
    ckpt["total_epochs"] = 3
    torch.save(ckpt, run / "last.pt")
    assert train_main([*common, "--epochs", "3", "--out", str(run), "--resume"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]

    model, best = load_checkpoint_model(run / "best.pt")
    assert best["arch"] == "emonet-t" and best["val"]["accuracy"] > 0.5

    # A student distilled from that checkpoint trains through the KD loss.
    student = tmp_path / "student"
    assert train_main([*common, "--epochs", "1", "--out", str(student), "--teacher", str(run / "best.pt")]) == 0
    assert (student / "best.pt").exists()
