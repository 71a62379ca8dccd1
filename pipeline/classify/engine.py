"""Inference engine: shipped weights -> probabilities for aligned 48x48 faces.

The safetensors file is the single source of truth. Three runtimes:

* ``onnx-int8`` (CPU default): the int8 ONNX model shipped next to the
  weights (``<name>.int8.onnx``, made from them by ``emotionpipe quantize``,
  which records the weights' SHA-256 in the card so a stale file is refused).
  1.5-1.9x the faces/s of fp32 for 0.2-0.3 points of accuracy.
* ``onnx``: fp32, exported to ONNX in memory at load time (about a second);
  ONNX Runtime runs these small convnets ~2x faster than PyTorch eager.
* ``torch``: PyTorch, used on GPUs (``num_gpus > 0`` or ``force_cuda``) and
  the reference the tests compare the others against.

:class:`EmotionEngine` is the ``emonet`` classifier backend (registered with
:mod:`pipeline.classify.backends`, which builds whichever backend settings name).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, get_args

import numpy as np

from pipeline.classify.backends import register_backend
from pipeline.classify.exceptions import StaleInt8Model, UnknownModel, WeightsError
from pipeline.classify.preprocess import INPUT_SIZE, normalise
from pipeline.contracts import LABELS
from pipeline.settings import ClassifierRuntime, ClassifySettings

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
RUNTIMES: tuple[str, ...] = get_args(ClassifierRuntime)
INT8_SUFFIX = ".int8.onnx"


@dataclass(frozen=True)
class ModelCard:
    """Metadata stored next to the weights (``<name>.json``)."""

    name: str
    arch: str
    version: int
    metrics: dict[str, Any]
    int8: dict[str, Any] | None = None

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


class Runner(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def weights_path(settings: ClassifySettings) -> Path:
    """The weights file selected by settings (explicit path or a shipped model name).

    Raises:
        UnknownModel: ``settings.model`` is not a shipped model.
    """
    if settings.weights is not None:
        return Path(settings.weights)
    path = WEIGHTS_DIR / f"{settings.model}.safetensors"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")))
        raise UnknownModel(f"unknown model {settings.model!r}; shipped: {shipped}")
    return path


def read_card(weights: Path) -> ModelCard:
    """The model card next to ``weights``.

    Raises:
        WeightsError: the card is missing or invalid.
    """
    card_path = weights.with_suffix(".json")
    try:
        raw = json.loads(card_path.read_text())
        return ModelCard(name=raw["name"], arch=raw["arch"], version=int(raw["version"]),
                         metrics=raw.get("metrics", {}), int8=raw.get("int8"))
    except FileNotFoundError:
        raise WeightsError(f"model card {card_path} is missing (it names the architecture)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"model card {card_path} is invalid: {exc}") from None


def load_torch_model(weights: Path, arch: str):  # -> torch.nn.Module
    """Build ``arch`` and load ``weights`` (safetensors) into it, eval mode.

    Raises:
        WeightsError: the file is missing, corrupt or holds another architecture.
    """
    from safetensors.torch import load_file

    from pipeline.classify.model import build_model, fuse_branches

    if not weights.exists():
        raise WeightsError(f"weights file {weights} not found")
    model = fuse_branches(build_model(arch))  # weights are stored in the served form
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:  # corrupt file, wrong architecture: both unusable
        raise WeightsError(f"cannot load {weights} as {arch}: {exc}") from None
    model.eval()
    return model


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def int8_path(weights: Path) -> Path:
    """Where the int8 model made from ``weights`` lives (``emonet-m.int8.onnx``)."""
    return weights.with_suffix(INT8_SUFFIX)


def onnx_bytes(model: Any) -> bytes:
    """fp32 ONNX of a torch model, batch dimension dynamic."""
    import torch

    buf = io.BytesIO()
    example = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    # The stubs want a tuple and a path; a tensor and a file object are accepted at run time.
    torch.onnx.export(
        model, example, buf, input_names=["x"], output_names=["logits"],  # type: ignore[arg-type]
        dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False,
    )
    return buf.getvalue()


def _int8_model(weights: Path, card: ModelCard) -> bytes | None:
    """The int8 model for ``weights``, or None when none was made.

    Raises:
        StaleInt8Model: the int8 file was made from other weights.
        WeightsError: the weights file is missing.
    """
    path = int8_path(weights)
    if not path.exists():
        return None
    if not weights.exists():
        raise WeightsError(f"weights file {weights} not found")
    made_from = (card.int8 or {}).get("source_sha256")
    if made_from != file_sha256(weights):
        raise StaleInt8Model(
            f"{path.name} was not made from {weights.name} (the card's int8.source_sha256 does not match); "
            "re-run `emotionpipe quantize` or use runtime onnx"
        )
    return path.read_bytes()


def onnx_runner(model_bytes: bytes, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn the core that detection and ingest share with us.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
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
    """The ``emonet`` backend: classifies aligned gray faces with a shipped (or given) model.

    Satisfies :class:`~pipeline.classify.backends.ClassifierBackend`; ``predict`` is safe to
    call with any batch size.
    """

    type: ClassVar[str] = "emonet"

    def __init__(self, card: ModelCard, runner: Runner, runtime: str, tta: bool = False) -> None:
        self.card = card
        self.runtime = runtime
        self.tta = tta
        self._run = runner

    @property
    def name(self) -> str:
        return self.card.tag

    @classmethod
    def load(cls, settings: ClassifySettings) -> EmotionEngine:
        """Load the configured emonet model for the configured runtime.

        Code that serves whichever backend settings name calls
        :func:`pipeline.classify.backends.create_backend` instead.

        Raises:
            UnknownModel: ``settings.model`` is not a shipped model.
            WeightsError: missing or corrupt weights or card.
            StaleInt8Model: the int8 model was made from other weights.
        """
        weights = weights_path(settings)
        card = read_card(weights)
        runtime: str = settings.runtime
        device = "cpu"
        if settings.num_gpus > 0 or settings.force_cuda:
            import torch

            if torch.cuda.is_available():
                runtime, device = "torch", "cuda"
        runner: Runner | None = None
        if runtime == "onnx-int8":
            int8 = _int8_model(weights, card)
            if int8 is not None:
                runner = onnx_runner(int8, settings.threads)
            else:
                log.warning("no %s next to %s (make one with `emotionpipe quantize`); serving fp32 onnx",
                            int8_path(weights).name, weights.name)
                runtime = "onnx"
        if runner is None:
            # Only the fp32 paths need torch (export or eager): int8 replicas never import it.
            model = load_torch_model(weights, card.arch)
            if runtime == "onnx":
                runner = onnx_runner(onnx_bytes(model), settings.threads)
            else:
                runner = _torch_runner(model, settings.threads, device)
        log.info("loaded %s (%s) on %s/%s", card.tag, card.arch, runtime, device)
        return cls(card, runner, f"{runtime}/{device}", tta=settings.tta)

    def logits(self, crops: np.ndarray) -> np.ndarray:
        """uint8 faces ``(N, 48, 48)`` -> float32 logits ``(N, 7)`` (mirror-averaged with TTA)."""
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        x = normalise(crops)
        if not self.tta:
            return np.asarray(self._run(x), dtype=np.float32)
        # FER2013 expressions are left-right symmetric enough for the mirror to be a second view;
        # one call over faces + mirrors keeps the batch the runtime is fastest at.
        z = np.asarray(self._run(np.concatenate([x, x[..., ::-1]])), dtype=np.float32)
        return (z[: len(x)] + z[len(x) :]) * np.float32(0.5)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 faces ``(N, 48, 48)`` -> probabilities ``(N, 7)`` in label order."""
        z = self.logits(crops)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


register_backend(EmotionEngine.type)(EmotionEngine.load)
