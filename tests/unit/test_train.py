"""Training loop, augmentation and metrics on tiny data (CPU, a few seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.classify.engine import WEIGHTS_DIR, EmotionEngine, file_sha256, int8_path
from pipeline.classify.metrics import classification_report
from pipeline.classify.model import ARCHITECTURES, build_model, count_macs
from pipeline.classify.preprocess import normalise
from pipeline.settings import ClassifySettings
from pipeline.train.augment import AugmentConfig, augment, cutmix
from pipeline.train.cli import main as train_main
from pipeline.train.evaluate import export_main
from pipeline.train.quantize import main as quantize_main
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

    # Fine-tuning (--init) starts from the given weights, not from a random initialisation.
    tuned = tmp_path / "tuned"
    assert train_main([*common, "--epochs", "1", "--out", str(tuned), "--init", str(run / "best.pt"),
                       "--lr", "1e-7", "--warmup-epochs", "0"]) == 0
    start, end = model.state_dict(), load_checkpoint_model(tuned / "best.pt")[0].state_dict()
    assert all(torch.allclose(start[k], end[k], atol=1e-4) for k in start if k.endswith(".weight"))
    # Stochastic weight averaging: one snapshot per epoch from --swa-start on, kept across --resume,
    # and its BatchNorm statistics recomputed rather than copied from the last raw model.
    swa = tmp_path / "swa"
    swa_args = [*common, "--out", str(swa), "--init", str(run / "best.pt"), "--swa-start", "1", "--swa-lr", "0.02"]
    assert train_main([*swa_args, "--epochs", "2"]) == 0
    ckpt = torch.load(swa / "last.pt", weights_only=False)
    assert int(ckpt["swa"]["n_averaged"]) == 2
    raw_bn = ckpt["model_raw"]["features.0.1.running_mean"]
    assert not torch.allclose(ckpt["swa"]["module.features.0.1.running_mean"], raw_bn)
    ckpt["total_epochs"] = 3
    torch.save(ckpt, swa / "last.pt")
    assert train_main([*swa_args, "--epochs", "3", "--resume"]) == 0
    last = torch.load(swa / "last.pt", weights_only=False)
    assert int(last["swa"]["n_averaged"]) == 3
    # swa.pt is the average itself (exportable like best.pt), and every epoch logs each source's accuracy.
    averaged, meta = load_checkpoint_model(swa / "swa.pt")
    assert meta["val"]["source"] == "swa"
    assert torch.equal(averaged.state_dict()["head.3.weight"], last["swa"]["module.head.3.weight"])
    history = json.loads((swa / "history.json").read_text())
    assert all({"raw", "ema", "swa"} <= set(row["by_source"]) for row in history)

    with pytest.raises(ValueError, match="holds emonet-t"):
        train_main([*common[:2], "--arch", "emonet-s", "--epochs", "1", "--out", str(tuned), "--init",
                    str(run / "best.pt")])


def test_quantize_writes_int8_model_and_card(tiny_npz: Path, tmp_path: Path) -> None:
    # Given a copy of the shipped emonet-s weights and card, without an int8 model
    weights = tmp_path / "emonet-s.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "emonet-s.safetensors", weights)
    shutil.copyfile(WEIGHTS_DIR / "emonet-s.json", weights.with_suffix(".json"))
    weights.with_suffix(".json").write_text(json.dumps({"name": "emonet-s", "arch": "emonet-s", "version": 1}))
    # When `emotionpipe quantize` runs with training faces for calibration
    assert quantize_main(["--weights", str(weights), "--data", str(tiny_npz), "--faces", "128"]) == 0
    # Then the int8 model sits beside the weights, the card records its origin and measured agreement,
    card = json.loads(weights.with_suffix(".json").read_text())
    assert int8_path(weights).is_file()
    assert card["int8"]["source_sha256"] == file_sha256(weights)
    assert card["int8"]["calibration"]["faces"] == 128
    assert card["int8"]["fer2013_val"]["n"] == 128
    assert 0.0 <= card["int8"]["fer2013_val"]["top1_agreement_with_fp32"] <= 1.0
    # and the int8 runtime serves it, close to fp32 (tiny synthetic faces, so only roughly).
    int8 = EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx-int8"))
    fp32 = EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx"))
    assert int8.runtime == "onnx-int8/cpu"
    faces = np.load(tiny_npz)["x_val"][:32]
    assert np.abs(int8.predict(faces) - fp32.predict(faces)).max() < 0.2


def test_export_writes_weights_card_figure_and_int8(tiny_npz: Path, tmp_path: Path) -> None:
    # Given a training checkpoint
    run = tmp_path / "run"
    common = ["--data", str(tiny_npz), "--arch", "emonet-t", "--batch-size", "32", "--threads", "1"]
    assert train_main([*common, "--epochs", "1", "--out", str(run)]) == 0
    out = tmp_path / "weights"
    # When it is exported
    assert export_main([str(run / "best.pt"), "--name", "tiny", "--version", "3", "--data", str(tiny_npz),
                        "--out", str(out)]) == 0
    # Then the weights, card, confusion figure and a current int8 model sit together,
    weights = out / "tiny.safetensors"
    card = json.loads(weights.with_suffix(".json").read_text())
    assert (out / "tiny-confusion.png").is_file() and int8_path(weights).is_file()
    assert card["arch"] == "emonet-t" and card["version"] == 3
    assert card["int8"]["source_sha256"] == file_sha256(weights)
    # and the int8 section's fp32 figures are the card's own (one fp32 pass, not two that could differ).
    assert card["int8"]["fer2013_val"]["fp32_accuracy"] == card["metrics"]["fer2013_val"]["accuracy"]
    # A missing checkpoint is a usage error, not a traceback.
    with pytest.raises(SystemExit):
        export_main([str(run / "nope.pt"), "--name", "tiny", "--version", "3", "--out", str(out)])
