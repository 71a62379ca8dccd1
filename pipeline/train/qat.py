"""Quantisation-aware training: the served int8 model's rounding, simulated while training.

The CPU serves what :mod:`pipeline.train.quantize` makes with ONNX Runtime's static int8
recipe. :class:`QuantSim` rounds the same tensors the same way, so the last epochs of a run
learn weights that survive it (Jacob et al. 2018), with gradients passed straight through the
rounding (``torch.fake_quantize_*``):

* the weights of every convolution but the first (which stays fp32): int8 per output
  channel, symmetric, scale ``max|w| / 64`` (ONNX Runtime's ``reduce_range``: -64..64);
* every conv-ReLU output and the pooled features: uint8 per tensor over ``[0, max]``, where
  ``max`` is the largest value the fp32 model produces on the calibration faces, which is
  ONNX Runtime's MinMax calibration on the same faces (:func:`calibration_faces`).
  :func:`calibrate` re-measures it, once per epoch while training.

Only a plain conv-ReLU chain is simulated exactly: emonet-r once its branches are folded
(:func:`~pipeline.classify.model.fuse_branches`). The ``emonet-*`` nets keep BatchNorm and
residual adds in training, which the served graph folds or quantises differently.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.classify.model import RepConv, RepNet, fuse_branches

WEIGHT_LEVELS = 64  # ONNX Runtime's int8 weights with reduce_range: -64..64
ACTIVATION_LEVELS = 255  # uint8 activations, zero point 0 after a ReLU


def calibration_faces(x_train: np.ndarray, faces: int = 2048, seed: int = 0) -> np.ndarray:
    """The training faces whose activation ranges the int8 model is made with (and QAT simulates)."""
    rng = np.random.default_rng(seed)
    return x_train[rng.choice(len(x_train), size=min(faces, len(x_train)), replace=False)]


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """Round conv weights to ONNX Runtime's per-channel symmetric int8 grid (straight-through gradient)."""
    with torch.no_grad():
        scale = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / WEIGHT_LEVELS
        zero = torch.zeros(len(scale), dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -WEIGHT_LEVELS, WEIGHT_LEVELS)


class ActivationGrid(nn.Module):
    """uint8 rounding of a non-negative tensor over ``[0, max]``; ``max`` comes from :func:`calibrate`."""

    max: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("max", torch.tensor(0.0))
        self.observing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.max = torch.maximum(self.max, x.detach().amax().float())
            return x
        if float(self.max) <= 0.0:  # never calibrated: nothing to round to yet
            return x
        scale = float(self.max) / ACTIVATION_LEVELS
        return torch.fake_quantize_per_tensor_affine(x.float(), scale, 0, 0, ACTIVATION_LEVELS).to(x.dtype)


class QuantSim(nn.Module):
    """A folded emonet-r whose forward pass rounds what the served int8 model rounds.

    ``net`` is the plain model itself (its state-dict keys under ``net.``), so
    :meth:`served` hands back exactly the weights to export.
    """

    def __init__(self, net: RepNet) -> None:
        super().__init__()
        layers = list(net.features)
        if not all(isinstance(layer, RepConv) and layer.fused is not None for layer in layers):
            raise ValueError("QuantSim needs an emonet-r net with its branches folded (fuse_branches)")
        self.net = net
        grids = [ActivationGrid() for _ in range(len(layers) + 1)]  # + the pooled features
        self.grids = nn.ModuleList(grids)
        # Typed views of modules registered above (a deepcopy maps them to the copies).
        self._convs: list[nn.Conv2d] = [layer.fused for layer in layers if isinstance(layer, RepConv) and layer.fused]
        self._grids = grids
        self.observing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self._convs):
            weight = conv.weight if i == 0 or self.observing else fake_quant_weight(conv.weight)
            x = self._grids[i](F.relu(F.conv2d(x, weight, conv.bias, conv.stride, conv.padding)))
        pool, flatten, dropout, linear = self.net.head
        return linear(dropout(flatten(self._grids[-1](pool(x)))))

    def set_observing(self, on: bool) -> None:
        """While observing, run the fp32 model and record each grid's range (as ONNX Runtime calibrates)."""
        self.observing = on
        for grid in self._grids:
            grid.observing = on

    def ranges(self) -> list[float]:
        """Each grid's calibrated maximum (0 = not calibrated)."""
        return [float(grid.max) for grid in self._grids]

    def reset_ranges(self) -> None:
        for grid in self._grids:
            grid.max.zero_()

    def served(self) -> RepNet:
        """The plain model to export; the int8 tooling rounds it as this simulation did."""
        return self.net


def to_qat(model: nn.Module) -> QuantSim:
    """Fold an emonet-r model (in place) and wrap it for quantisation-aware training.

    Raises:
        ValueError: ``model`` is not a RepNet (emonet-r).
    """
    if not isinstance(model, RepNet):
        raise ValueError(f"quantisation-aware training needs emonet-r (RepNet), not {type(model).__name__}")
    was_training = model.training
    fuse_branches(model.eval())  # folding reads BatchNorm's running statistics
    return QuantSim(model).train(was_training)


@torch.no_grad()
def calibrate(sim: QuantSim, faces: torch.Tensor, batch: int = 512) -> None:
    """Set every grid's range to the fp32 model's maximum over ``faces`` (normalised floats, N×1×48×48)."""
    was_training = sim.training
    sim.eval()
    sim.reset_ranges()
    sim.set_observing(True)
    try:
        for i in range(0, len(faces), batch):
            sim(faces[i : i + batch])
    finally:
        sim.set_observing(False)
        sim.train(was_training)
