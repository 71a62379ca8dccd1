"""Quantisation-aware training: the simulation rounds as ONNX Runtime's int8 model does (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.classify.engine import EmotionEngine, onnx_bytes
from pipeline.classify.model import RepNet, build_model, parse_layout
from pipeline.classify.preprocess import normalise
from pipeline.settings import ClassifySettings
from pipeline.train.qat import QuantSim, calibrate, calibration_faces, to_qat
from pipeline.train.quantize import quantize_onnx
from pipeline.train.data import to_input
from pipeline.train.checkpoint import load_checkpoint_model
from tests.support.cli import run_cli
from tests.support.training import randomise_batchnorm, write_tiny_npz


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def _int8_logits(model: RepNet, calibration: np.ndarray, faces: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    int8, _ = quantize_onnx(onnx_bytes(model), calibration)
    session = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": normalise(faces)})[0]


def test_simulated_int8_matches_onnx_runtime_int8() -> None:
    # Given emonet-r with non-trivial BatchNorm statistics, folded and wrapped for QAT,
    torch.manual_seed(0)
    model = build_model("emonet-r")
    randomise_batchnorm(model, seed=1)
    sim = to_qat(model.eval()).eval()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (384, 48, 48), dtype=np.uint8)
    calibration, test = faces[:256], faces[256:]
    # calibrated on the faces the int8 tooling is given
    calibrate(sim, torch.from_numpy(normalise(calibration)))
    assert all(r > 0 for r in sim.ranges())
    # When ONNX Runtime quantises the same weights with the same faces
    served = _int8_logits(sim.served(), calibration, test)
    x = torch.from_numpy(normalise(test))
    with torch.no_grad():
        simulated = sim(x).numpy()
        sim.set_observing(True)
        fp32 = sim(x).numpy()
        sim.set_observing(False)
    # Then the simulation is far closer to the served int8 logits than the fp32 model is. Measured:
    # 0.0053 vs 0.149 mean absolute difference (3.6 %); activations on a 7-bit grid instead: 9.4 %.
    sim_error, fp32_error = np.abs(simulated - served).mean(), np.abs(fp32 - served).mean()
    assert fp32_error > 0.02, "the int8 rounding should be visible at all"
    assert sim_error < 0.06 * fp32_error, (sim_error, fp32_error)


def test_to_qat_keeps_the_function_and_refuses_other_nets() -> None:
    torch.manual_seed(0)
    model = RepNet(parse_layout("8x1,16x2"))
    randomise_batchnorm(model)
    x = torch.randn(4, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        before = model(x)
        sim = to_qat(model).eval()
        # An uncalibrated simulation has no ranges yet and rounds only the weights: still close.
        assert torch.allclose(sim(x), before, atol=0.15)
        sim.set_observing(True)
        assert torch.allclose(sim(x), before, atol=1e-4)  # observing runs the fp32 model
    with pytest.raises(ValueError, match="emonet-r"):
        to_qat(build_model("emonet-t"))


def test_qat_epochs_train_resume_and_export(tiny_npz: Path, tmp_path: Path) -> None:
    common = ["--data", str(tiny_npz), "--arch", "emonet-r", "--batch-size", "32", "--threads", "1"]
    run = tmp_path / "run"
    # Given a run whose last epoch of two is quantisation-aware
    assert run_cli("train", *common, "--epochs", "2", "--qat-epochs", "1", "--out", str(run)).code == 0
    history = json.loads((run / "history.json").read_text())
    assert [row["qat"] for row in history] == [False, True]
    ckpt = torch.load(run / "last.pt", weights_only=False)
    assert ckpt["qat"] and any(k.startswith("grids.") for k in ckpt["model_raw"])
    # best.pt is picked among the simulated epochs; the fp32 pick before them stays as best-fp32.pt.
    assert torch.load(run / "best.pt", weights_only=False)["qat"]
    assert torch.load(run / "best-fp32.pt", weights_only=False)["epoch"] == 1
    # When it is resumed for one more epoch, it goes on in the simulated form.
    ckpt["total_epochs"] = 3
    torch.save(ckpt, run / "last.pt")
    assert run_cli("train", *common, "--epochs", "3", "--qat-epochs", "1", "--out", str(run), "--resume").code == 0
    history = json.loads((run / "history.json").read_text())
    assert [row["qat"] for row in history] == [False, True, True]

    # A QAT fine-tune of a checkpoint (every epoch simulated) gives a best.pt that loads as the plain
    # folded net and exports to an int8 model computing what the simulation computed.
    tuned = tmp_path / "tuned"
    assert run_cli("train", *common, "--epochs", "1", "--qat-epochs", "1", "--init", str(run / "best.pt"),
                   "--out", str(tuned)).code == 0
    best = torch.load(tuned / "best.pt", weights_only=False)
    assert best["qat"]
    model, _ = load_checkpoint_model(tuned / "best.pt")
    assert isinstance(model, RepNet) and not isinstance(model, QuantSim)
    out = tmp_path / "weights"
    assert run_cli("export", str(tuned / "best.pt"), "--name", "rq", "--version", "1", "--data", str(tiny_npz),
                   "--out", str(out)).code == 0
    data = np.load(tiny_npz)
    faces = data["x_val"][:32]
    sim = to_qat(build_model("emonet-r"))
    sim.load_state_dict(best["model"])
    calibrate(sim.eval(), to_input(torch.from_numpy(calibration_faces(data["x_train"]))))
    with torch.no_grad():
        expected = torch.softmax(sim(to_input(torch.from_numpy(faces))), 1).numpy()
    engine = EmotionEngine.load(ClassifySettings(weights=out / "rq.safetensors", runtime="onnx-int8"))
    assert np.abs(engine.predict(faces) - expected).max() < 0.02

    with pytest.raises(ValueError, match="emonet-r"):
        run_cli("train", *common[:2], "--arch", "emonet-t", "--epochs", "1", "--qat-epochs", "1",
                "--out", str(tmp_path / "refused"))
