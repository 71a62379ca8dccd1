"""Inference engine: shipped weights -> probabilities for aligned 48x48 faces.

The safetensors file is the single source of truth. The ``onnx`` runtime
exports it to ONNX in memory at load time (about a second) because ONNX
Runtime runs these small convnets ~2x faster than PyTorch eager on one CPU
core; the ``torch`` runtime serves GPUs (``num_gpus > 0``) and is the
reference the tests compare against.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.classify.preprocess import normalise
from pipeline.exceptions import ModelError
from pipeline.settings import ClassifySettings

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
RUNTIMES = ("onnx", "torch")


@dataclass(frozen=True)
class ModelCard:
    """Metadata stored next to the weights (``<name>.json``)."""

    name: str
    arch: str
    version: int
    metrics: dict[str, Any]

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


class Runner(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def weights_path(settings: ClassifySettings) -> Path:
    """The weights file selected by settings (explicit path or a shipped model name)."""
    if settings.weights is not None:
        return Path(settings.weights)
    path = WEIGHTS_DIR / f"{settings.model}.safetensors"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")))
        raise ModelError(f"unknown model {settings.model!r}; shipped: {shipped}")
    return path


def read_card(weights: Path) -> ModelCard:
    card_path = weights.with_suffix(".json")
    try:
        raw = json.loads(card_path.read_text())
        return ModelCard(name=raw["name"], arch=raw["arch"], version=int(raw["version"]), metrics=raw.get("metrics", {}))
    except FileNotFoundError:
        raise ModelError(f"model card {card_path} is missing (it names the architecture)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"model card {card_path} is invalid: {exc}") from None


def load_torch_model(weights: Path, arch: str):  # -> torch.nn.Module
    """Build ``arch`` and load ``weights`` (safetensors) into it, eval mode."""
    import torch
    from safetensors.torch import load_file

    from pipeline.classify.model import build_model

    if not weights.exists():
        raise ModelError(f"weights file {weights} not found")
    model = build_model(arch)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:  # corrupt file, wrong architecture: both unusable
        raise ModelError(f"cannot load {weights} as {arch}: {exc}") from None
    model.eval()
    return model


def _onnx_runner(model: Any, threads: int) -> Runner:
    import onnxruntime as ort
    import torch

    buf = io.BytesIO()
    # The stubs want a tuple and a path; a tensor and a file object are accepted at run time.
    torch.onnx.export(
        model, torch.zeros(1, 1, 48, 48), buf, input_names=["x"], output_names=["logits"],  # type: ignore[arg-type]
        dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn the core that detection and ingest share with us.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]


def _torch_runner(model: Any, threads: int, device: str) -> Runner:
    import torch

    if device == "cpu":
        torch.set_num_threads(threads)
    model = model.to(device)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


class EmotionEngine:
    """Classifies aligned gray faces; ``predict`` is safe to call with any batch size."""

    def __init__(self, card: ModelCard, runner: Runner, runtime: str) -> None:
        self.card = card
        self.runtime = runtime
        self._run = runner

    @property
    def name(self) -> str:
        return self.card.tag

    @classmethod
    def load(cls, settings: ClassifySettings) -> EmotionEngine:
        """Load the configured model for the configured runtime.

        Raises:
            ModelError: unknown runtime/backend, missing or corrupt weights.
        """
        if settings.backend != "emonet":
            from pipeline.classify.deepface_backend import load_deepface_engine

            return load_deepface_engine(settings)  # type: ignore[return-value]
        if settings.runtime not in RUNTIMES:
            raise ModelError(f"unknown runtime {settings.runtime!r}; use one of {', '.join(RUNTIMES)}")
        weights = weights_path(settings)
        card = read_card(weights)
        model = load_torch_model(weights, card.arch)
        runtime = settings.runtime
        device = "cpu"
        if settings.num_gpus > 0 or os.environ.get("EP_FORCE_CUDA"):
            import torch

            if torch.cuda.is_available():
                runtime, device = "torch", "cuda"
        if runtime == "onnx":
            runner = _onnx_runner(model, settings.threads)
        else:
            runner = _torch_runner(model, settings.threads, device)
        log.info("loaded %s (%s) on %s/%s", card.tag, card.arch, runtime, device)
        return cls(card, runner, f"{runtime}/{device}")

    def logits(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32)
        return np.asarray(self._run(normalise(crops)), dtype=np.float32)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 faces ``(N, 48, 48)`` -> probabilities ``(N, 7)`` in label order."""
        z = self.logits(crops)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
