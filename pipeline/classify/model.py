"""Emotion CNN architectures.

Two families share one builder so a checkpoint names its architecture and the
loader rebuilds it without guessing:

* ``emonet-*``: the shipped, CPU-fast VGG-style nets (3x3 convs, BN folded at
  export), sized by a width multiplier. Accuracy per FLOP on 48x48 faces comes
  from spending compute at 24x24 and 12x12, not at full resolution.
* ``emonet-r*``: RepVGG-style nets (Ding et al. 2021). Each layer trains as
  3x3 conv-BN + 1x1 conv-BN (+ BN identity) branches, summed; :func:`fuse_branches`
  folds them into one 3x3 conv with bias, so the served graph is a plain
  conv-ReLU chain with no residual adds, which int8 ONNX Runtime runs faster
  than ``emonet-*``'s residual pairs at the same multiply-accumulates.
  Checkpoints hold the branched form; shipped weights the fused one.
* ``resnet18``: a large teacher used only for distillation (trained where a
  GPU is available); never shipped.

Input: ``(N, 1, 48, 48)`` float tensors already normalised by
:func:`pipeline.classify.preprocess.normalise`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 7


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResidualPair(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (channels unchanged)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class EmoNet(nn.Module):
    """Fast student: stride-2 transitions then residual pairs per stage."""

    def __init__(self, widths: tuple[int, int, int, int], dropout: float = 0.3) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            _conv_bn(1, w0),  # 48x48
            _conv_bn(w0, w1, stride=2),  # 24x24
            ResidualPair(w1),
            _conv_bn(w1, w2, stride=2),  # 12x12
            ResidualPair(w2),
            _conv_bn(w2, w3, stride=2),  # 6x6
            ResidualPair(w3),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(w3, NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RepConv(nn.Module):
    """3x3 conv + ReLU that trains with parallel 1x1 and identity branches.

    After :meth:`fuse` the branches are gone and the layer is one biased 3x3
    convolution computing the same function (in eval mode, where BatchNorm is
    an affine map).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.conv3 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.fused: nn.Conv2d | None = None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.relu(self.fused(x))
        out = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))
        if self.identity is not None:
            out = out + self.identity(x)
        return self.relu(out)

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel and bias equal to the branches' sum (BN running statistics)."""
        k3, b3 = _fold_bn(self.conv3.weight, self.bn3)
        k1, b1 = _fold_bn(self.conv1.weight, self.bn1)
        kernel = k3 + F.pad(k1, [1, 1, 1, 1])
        bias = b3 + b1
        if self.identity is not None:
            eye = torch.zeros_like(k3)
            eye[torch.arange(self.cout), torch.arange(self.cin), 1, 1] = 1.0
            ki, bi = _fold_bn(eye, self.identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel, bias

    def fuse(self) -> None:
        """Replace the branches by one conv; idempotent."""
        if self.fused is not None:
            return
        kernel, bias = self.fused_kernel()
        self.fused = nn.Conv2d(self.cin, self.cout, 3, stride=self.stride, padding=1, bias=True)
        self.fused.weight.data.copy_(kernel)
        assert self.fused.bias is not None
        self.fused.bias.data.copy_(bias)
        for name in ("conv3", "bn3", "conv1", "bn1", "identity"):
            delattr(self, name)
        self.identity = None


def _fold_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepNet(nn.Module):
    """Plain RepConv stages; the first at 48x48, each later one opens with a stride-2 layer.

    ``stages`` is ``((width, layers), ...)``, e.g. ``((16, 1), (32, 2), (64, 4), (160, 3))``.
    """

    def __init__(self, stages: tuple[tuple[int, int], ...], dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, (width, depth) in enumerate(stages):
            for j in range(depth):
                layers.append(RepConv(cin, width, stride=2 if i > 0 and j == 0 else 1))
                cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fuse_branches(model: nn.Module) -> nn.Module:
    """Fold every :class:`RepConv` into its single-conv form, in place; other models pass through."""
    for module in model.modules():
        if isinstance(module, RepConv):
            module.fuse()
    return model


def parse_layout(text: str) -> tuple[tuple[int, int], ...]:
    """``"16x1,32x2,64x4,160x3"`` -> ``((16, 1), (32, 2), (64, 4), (160, 3))`` (width x layers per stage)."""
    try:
        stages = tuple((int(w), int(d)) for w, d in (part.split("x") for part in text.split(",")))
    except ValueError:
        raise ValueError(f"layout {text!r} is not width x layers per stage, e.g. 16x1,32x2,64x4,160x3") from None
    if not stages or any(w < 1 or d < 1 for w, d in stages):
        raise ValueError(f"layout {text!r}: widths and layer counts must be >= 1")
    return stages


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (no max-pool) for 48x48 faces: the teacher."""

    def __init__(self, width: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = _conv_bn(1, width)
        layers: list[nn.Module] = []
        cin = width
        for i, cout in enumerate((width, width * 2, width * 4, width * 8)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "emonet-t": lambda: EmoNet((16, 24, 48, 96)),
    "emonet-s": lambda: EmoNet((16, 32, 64, 128)),
    "emonet-m": lambda: EmoNet((24, 48, 96, 192)),
    "emonet-l": lambda: EmoNet((32, 64, 128, 256)),
    # Picked with `emotionpipe bench arch`: the most parameters at >= 1.14x emonet-s's int8 faces/s.
    "emonet-r": lambda: RepNet(((16, 1), (32, 1), (64, 3), (160, 3))),
    "resnet18": lambda: ResNet18(64),
}


def build_model(arch: str) -> nn.Module:
    """Instantiate an architecture by name.

    Raises:
        KeyError: if ``arch`` is not one of :data:`ARCHITECTURES`.
    """
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {arch!r}; known: {known}") from None
    return factory()


def count_macs(model: nn.Module, size: int = 48) -> int:
    """Multiply-accumulates of one forward pass on a ``size``x``size`` face."""
    macs = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    model.train(was_training)
    for h in handles:
        h.remove()
    return macs
