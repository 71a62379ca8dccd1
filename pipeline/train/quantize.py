"""Make the int8 model the CPU runtime serves (the command: ``emotionpipe quantize``).

Static post-training quantisation with ONNX Runtime's tooling: weights int8
per output channel, activations uint8 with ranges calibrated on training faces
(never validation faces, which measure the result).

Two choices carry the accuracy (FER2013 validation, 512 calibration faces):

* ``reduce_range``: x86 CPUs without VNNI (AVX2, e.g. this project's AMD EPYC
  machines) multiply uint8 x int8 with ``vpmaddubsw``, which saturates when two
  products are added in int16. 7-bit weights cannot saturate: emonet-s went
  from 64.7 % to 68.2 % (fp32: 68.6 %).
* The first convolution (it sees raw pixels through a single input channel)
  and the final classifier layer stay fp32: they are ~1 % of the compute and
  quantising them cost emonet-m 0.14 points (69.55 % vs 69.69 %).

The card next to the weights gets an ``int8`` section: how the file was made,
the SHA-256 of the weights it was made from (the engine refuses a stale file)
and its validation figures next to fp32's.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify.engine import (
    EmotionEngine,
    file_sha256,
    int8_path,
    load_torch_model,
    onnx_bytes,
    read_card,
)
from pipeline.classify.metrics import classification_report
from pipeline.classify.preprocess import normalise
from pipeline.settings import ClassifySettings
from pipeline.train.predict import predict_labels
from pipeline.train.qat import calibration_faces
from pipeline.train.data import load_split

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 64


def fp32_nodes(model_path: Path) -> list[str]:
    """Nodes kept in fp32: convolutions fed by the graph input, and the Gemm/MatMul head."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    inputs = {i.name for i in graph.input}
    return [
        n.name for n in graph.node
        if (n.op_type == "Conv" and n.input[0] in inputs) or n.op_type in ("Gemm", "MatMul")
    ]


def quantize_onnx(fp32: bytes, calibration: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Static int8 QDQ model from an fp32 ONNX model and uint8 calibration faces.

    Returns:
        ``(int8 model bytes, recipe)``; the recipe is stored in the card.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.start >= len(calibration):
                return None
            batch = calibration[self.start : self.start + CALIBRATION_BATCH]
            self.start += CALIBRATION_BATCH
            return {"x": normalise(batch)}

    with tempfile.TemporaryDirectory(prefix="ep-quant-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre))  # shape inference + constant folding
        keep = fp32_nodes(pre)
        quantize_static(
            str(pre), str(out), Faces(),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        recipe = {
            "format": "QDQ", "weights": "int8 per channel, 7-bit range (reduce_range)",
            "activations": "uint8 per tensor, MinMax", "fp32_nodes": keep,
        }
        return out.read_bytes(), recipe


def quantize_weights(
    weights: Path, data: str, faces: int = 2048, seed: int = 0, fp32_labels: np.ndarray | None = None
) -> dict[str, Any]:
    """Write ``<weights>.int8.onnx`` and the card's ``int8`` section; returns that section.

    The validation split of ``data`` (if present) measures int8 against fp32; ``fp32_labels``
    (the fp32 model's labels for that split) spares a second fp32 pass when the caller has them.

    Raises:
        ModelError: unreadable weights or card.
        KeyError, ValueError, OSError: unusable ``data``.
    """
    card = read_card(weights)
    model = load_torch_model(weights, card.arch)
    x_train, _ = load_split(data, "train")
    calibration = calibration_faces(x_train, faces, seed)
    int8, recipe = quantize_onnx(onnx_bytes(model), calibration)
    target = int8_path(weights)
    target.write_bytes(int8)
    section: dict[str, Any] = {
        "file": target.name,
        "source_sha256": file_sha256(weights),
        "calibration": {"data": f"{Path(data).name}:train", "faces": len(calibration), "seed": seed},
        **recipe,
    }
    _write_card_section(weights, section)  # the engine checks the hash before loading the file
    try:
        x_val, y_val = load_split(data, "val")
    except KeyError:
        log.warning("%s has no val split: int8 accuracy not measured", data)
        return section
    fp32 = fp32_labels
    if fp32 is None:
        fp32 = predict_labels(EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx")), x_val)
    int8_labels = predict_labels(EmotionEngine.load(ClassifySettings(weights=weights, runtime="onnx-int8")), x_val)
    fp32_report, int8_report = classification_report(y_val, fp32), classification_report(y_val, int8_labels)
    agree = float((fp32 == int8_labels).mean())
    section["fer2013_val"] = {
        "accuracy": int8_report.accuracy, "macro_f1": int8_report.macro_f1,
        "fp32_accuracy": fp32_report.accuracy, "fp32_macro_f1": fp32_report.macro_f1,
        "top1_agreement_with_fp32": agree, "n": len(y_val),
    }
    _write_card_section(weights, section)
    return section


def _write_card_section(weights: Path, section: dict[str, Any]) -> None:
    card_path = weights.with_suffix(".json")
    raw = json.loads(card_path.read_text())
    raw["int8"] = section
    card_path.write_text(json.dumps(raw, indent=1))
