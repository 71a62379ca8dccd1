"""Training loop, augmentation and metrics on tiny data (CPU, a few seconds)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.classify.engine import WEIGHTS_DIR, EmotionEngine, file_sha256, int8_path
from pipeline.classify.metrics import classification_report, compare_paired
from pipeline.classify.model import ARCHITECTURES, RepConv, RepNet, build_model, count_macs, fuse_branches, parse_layout
from pipeline.classify.preprocess import normalise
from pipeline.settings import ClassifySettings
from pipeline.train.augment import VIEW_COLUMNS, AugmentConfig, apply_view, augment, cutmix, draw_view
from pipeline.train.checkpoint import load_checkpoint_model
from pipeline.train.data import to_input
from pipeline.train.trainer import shared_cross_entropy
from tests.support.cli import run_cli
from tests.support.training import randomise_batchnorm, write_tiny_npz


def train_main(argv: list[str]) -> int:
    """Exit status of `emotionpipe train ARGV` (an exception from the trainer propagates)."""
    return run_cli("train", *argv).code


def export_main(argv: list[str]) -> int:
    """Exit status of `emotionpipe export ARGV`."""
    return run_cli("export", *argv).code


def quantize_main(argv: list[str]) -> int:
    """Exit status of `emotionpipe quantize ARGV`."""
    return run_cli("quantize", *argv).code


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def test_metrics_match_hand_computed_values() -> None:
    y_true = np.array([0, 0, 3, 3, 3, 6])
    y_pred = np.array([0, 3, 3, 3, 6, 6])
    rep = classification_report(y_true, y_pred)
    assert rep.accuracy == pytest.approx(4 / 6)
    assert rep.recall["angry"] == pytest.approx(0.5)
    assert rep.recall["happy"] == pytest.approx(2 / 3)
    assert rep.precision["neutral"] == pytest.approx(0.5)
    assert rep.confusion[3][6] == 1 and sum(map(sum, rep.confusion)) == 6


def test_paired_comparison_counts_faces_only_one_model_gets_right() -> None:
    # Given two models on eight faces: A right on 0-5, B right on 0-1 and 6-7 (truth is 0 everywhere)
    y = np.zeros(8, np.int64)
    a = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    b = np.array([0, 0, 2, 2, 2, 2, 0, 0])
    # When they are compared paired
    c = compare_paired(y, a, b)
    # Then only the discordant faces count: 4 for A, 2 for B
    assert (c.only_a, c.only_b, c.n) == (4, 2, 8)
    assert c.difference == pytest.approx(0.25)
    # paired standard error: sqrt((6/8 - (2/8)^2) / 8); McNemar exact: 2 * P(X <= 2 | 6, 1/2) = 2 * 22/64
    assert c.std_error == pytest.approx(np.sqrt((6 / 8 - (2 / 8) ** 2) / 8))
    assert c.p_value == pytest.approx(44 / 64)
    # a lopsided split is unlikely under "equally good", identical labels are certain
    assert compare_paired(np.zeros(6), np.zeros(6), np.ones(6)).p_value == pytest.approx(2 / 64)
    same = compare_paired(y, a, a)
    assert (same.p_value, same.std_error, same.difference) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same faces"):
        compare_paired(y, a, b[:7])


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
    mixed, perm, lam = cutmix(out, AugmentConfig(mix_p=1.0), gen)
    assert mixed.shape == x.shape and 0.0 <= lam <= 1.0
    assert perm is not None and sorted(perm.tolist()) == list(range(16))
    # The patch comes from the face perm points at; the rest of each face is its own.
    changed = (mixed != out).flatten(1).any(1)
    assert torch.equal(changed, (perm != torch.arange(16)) & (lam < 1.0))
    unmixed, perm, lam = cutmix(out, AugmentConfig(mix_p=0.0), gen)
    assert unmixed is out and perm is None and lam == 1.0


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_shared_cross_entropy_is_torch_s_weighted_mean_scaled_by_each_face_s_share(smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits, y = torch.randn(32, 7, generator=gen), torch.randint(7, (32,), generator=gen)
    weight = torch.rand(7, generator=gen) + 0.5
    mean = torch.nn.functional.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)
    assert torch.allclose(shared_cross_entropy(logits, y, 1.0, weight, smoothing), mean)
    assert torch.allclose(shared_cross_entropy(logits, y, 0.3, weight, smoothing), 0.3 * mean)
    assert torch.allclose(shared_cross_entropy(logits, y, torch.full((32,), 0.3), weight, smoothing), 0.3 * mean)
    share = torch.zeros(32)
    share[4] = 1.0  # one face alone: its own loss, over the whole batch's weight
    alone = torch.nn.functional.cross_entropy(logits[4:5], y[4:5], weight=weight, label_smoothing=smoothing)
    expected = alone * weight[y[4]] / weight[y].sum()
    assert torch.allclose(shared_cross_entropy(logits, y, share, weight, smoothing), expected)


def test_augment_is_a_drawn_view_applied() -> None:
    # A bank regenerates views with draw_view/apply_view; augment must be exactly that, draw for draw.
    x = torch.randn(16, 1, 48, 48)
    cfg = AugmentConfig()
    drawn = apply_view(x, draw_view(16, cfg, torch.Generator().manual_seed(5)))
    assert torch.equal(augment(x, cfg, torch.Generator().manual_seed(5)), drawn)
    ones = {"scale", "flip", "contrast"}
    identity = torch.tensor([[1.0 if c in ones else 0.0 for c in VIEW_COLUMNS]]).expand(16, -1)
    assert torch.allclose(apply_view(x, identity), x, atol=1e-5)  # no rotation, shift, jitter or erasing


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_output_seven_logits(arch: str) -> None:
    model = build_model(arch).eval()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    assert count_macs(model) > 1_000_000


@pytest.mark.parametrize("stride", [1, 2])
def test_repconv_folds_into_one_conv_with_the_same_output(stride: int) -> None:
    # Given a branched layer with non-trivial BatchNorm statistics (identity branch only at stride 1)
    torch.manual_seed(0)
    layer = RepConv(8, 8, stride=stride)
    randomise_batchnorm(layer)
    layer.eval()
    assert (layer.identity is not None) == (stride == 1)
    x = torch.randn(3, 8, 12, 12)
    before = layer(x)
    # When its branches are folded
    layer.fuse()
    # Then one biased 3x3 conv remains and computes the same function.
    assert layer.fused is not None and not hasattr(layer, "conv1")
    assert [name for name, _ in layer.named_children()] == ["relu", "fused"]
    assert torch.allclose(layer(x), before, atol=1e-5)


def test_repnet_folded_and_branched_logits_agree() -> None:
    torch.manual_seed(1)
    model = build_model("emonet-r")
    randomise_batchnorm(model, seed=1)
    model.eval()
    x = torch.randn(4, 1, 48, 48)
    branched = model(x)
    served = fuse_branches(model)(x)
    assert torch.allclose(served, branched, atol=1e-4)
    # The fused graph is what the engine counts and serves: only 3x3 convs and the head remain.
    kinds = {type(m).__name__ for m in model.modules() if not list(m.children())}
    assert kinds == {"Conv2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Linear"}


def test_parse_layout_reads_stages_and_refuses_nonsense() -> None:
    assert parse_layout("16x1,32x2,64x4,160x3") == ((16, 1), (32, 2), (64, 4), (160, 3))
    assert RepNet(parse_layout("8x1,16x2"))(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    for bad in ("16-1", "16x0", "", "ax2"):
        with pytest.raises(ValueError, match="layout"):
            parse_layout(bad)


def test_repnet_checkpoint_exports_to_the_served_form(tiny_npz: Path, tmp_path: Path) -> None:
    # Given an emonet-r checkpoint (branched, as trained)
    run = tmp_path / "run"
    common = ["--data", str(tiny_npz), "--arch", "emonet-r", "--batch-size", "32", "--threads", "1"]
    assert train_main([*common, "--epochs", "1", "--out", str(run)]) == 0
    branched, _ = load_checkpoint_model(run / "best.pt")
    assert any(isinstance(m, RepConv) and m.fused is None for m in branched.modules())
    out = tmp_path / "weights"
    # When it is exported and served by each runtime
    assert export_main([str(run / "best.pt"), "--name", "rep", "--version", "1", "--data", str(tiny_npz),
                        "--out", str(out)]) == 0
    weights = out / "rep.safetensors"
    faces = np.load(tiny_npz)["x_val"][:16]
    with torch.no_grad():
        expected = torch.softmax(branched(to_input(torch.from_numpy(faces))), 1).numpy()
    # then the shipped weights hold single convs and every runtime matches the branched checkpoint.
    from safetensors.torch import load_file

    assert not any("conv1" in k or "bn3" in k for k in load_file(str(weights)))
    for runtime, tol in (("torch", 1e-5), ("onnx", 1e-4), ("onnx-int8", 0.2)):
        engine = EmotionEngine.load(ClassifySettings(weights=weights, runtime=runtime))
        assert engine.runtime.startswith(runtime + "/")
        assert np.abs(engine.predict(faces) - expected).max() < tol, runtime


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

    # A student distilled from that checkpoint trains through the KD loss, its teacher's logits computed by
    # ONNX Runtime on CPU: the same function as the checkpoint's torch model.
    from pipeline.train.trainer import load_teacher

    faces = to_input(torch.from_numpy(np.load(tiny_npz)["x_val"][:64])).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(load_teacher(str(run / "best.pt"), torch.device("cpu"))(faces), model(faces), atol=1e-4)
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
    assert export_main([str(run / "nope.pt"), "--name", "tiny", "--version", "3", "--out", str(out)]) == 2


def test_with_val_trains_on_both_splits_and_keeps_the_last_epoch(tiny_npz: Path, tmp_path: Path) -> None:
    from pipeline.train.qat import calibration_faces
    from pipeline.train.trainer import TrainConfig, Trainer

    # Given the tiny data (256 train, 128 validation faces), a --with-val trainer holds both splits,
    with np.load(tiny_npz) as data:
        x_train = data["x_train"]
    both = Trainer(TrainConfig(data=str(tiny_npz), out=str(tmp_path / "t"), arch="emonet-r", with_val=True))
    assert len(both.x_train) == 384 and torch.equal(both.x_train[:256].cpu(), torch.from_numpy(x_train))
    # but simulates the int8 model's calibration on the train split alone, as `emotionpipe quantize` makes it.
    both._enter_qat(both.model)
    assert both.calibration is not None
    assert torch.equal(both.calibration.cpu(), to_input(torch.from_numpy(calibration_faces(x_train))))

    # When a run's best validation figure cannot be beaten (patched to 1.0) and it resumes for one more epoch,
    common = ["--data", str(tiny_npz), "--arch", "emonet-t", "--batch-size", "32", "--threads", "1"]
    best_epochs = {}
    for flags in ([], ["--with-val"]):
        run = tmp_path / f"run{len(flags)}"
        assert train_main([*common, "--epochs", "1", "--out", str(run), *flags]) == 0
        ckpt = torch.load(run / "last.pt", weights_only=False)
        torch.save({**ckpt, "best_acc": 1.0, "total_epochs": 2}, run / "last.pt")
        assert train_main([*common, "--epochs", "2", "--out", str(run), "--resume", *flags]) == 0
        best_epochs[len(flags)] = torch.load(run / "best.pt", weights_only=False)["epoch"]
    # then a plain run keeps its best epoch and a --with-val run keeps the last one, the EMA's, marked as such.
    assert best_epochs == {0: 1, 1: 2}
    best = torch.load(tmp_path / "run1" / "best.pt", weights_only=False)
    assert best["validation_seen"] and best["val"]["source"] == "ema"
    history = json.loads((tmp_path / "run1" / "history.json").read_text())
    assert [row["source"] for row in history] == ["ema", "ema"]
    # Its export says so in the card and on the terminal.
    out = tmp_path / "weights"
    done = run_cli("export", str(tmp_path / "run1" / "best.pt"), "--name", "tiny", "--version", "1",
                   "--data", str(tiny_npz), "--out", str(out), "--no-int8")
    assert done.code == 0 and "trained on the validation faces" in done.stdout
    assert json.loads((out / "tiny.json").read_text())["training"]["validation_seen"] is True


def test_a_resumed_run_keeps_the_best_epoch(tiny_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.train.trainer import TrainConfig, Trainer

    def scripted(trainer: Trainer, accuracies: list[float]) -> None:
        # Validation figures in a set order, so "best" is known; the epochs themselves really train.
        figures = iter(accuracies)

        def validate() -> dict:
            acc = next(figures)
            return {"source": "ema", "accuracy": acc, "macro_f1": acc, "by_source": {"ema": acc, "raw": 0.0}}

        monkeypatch.setattr(trainer, "validate", validate)

    cfg = TrainConfig(data=str(tiny_npz), out=str(tmp_path / "run"), arch="emonet-t", epochs=2, batch_size=64,
                      threads=1)
    # Given a run whose second epoch is its best, stopped after it
    first = Trainer(cfg)
    scripted(first, [0.5, 0.6])
    assert first.fit() == 0.6
    # When it resumes for a worse third epoch
    resumed = Trainer(replace(cfg, epochs=3, resume=True))
    resumed.total_epochs = 3
    scripted(resumed, [0.55])
    # Then best.pt is still the second epoch: last.pt carried the best figure including its own epoch.
    assert resumed.fit() == 0.6
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["epoch"] == 2
