"""Emotion CNN architectures.

Two families share one builder so a checkpoint names its architecture and the
loader rebuilds it without guessing:

* ``emonet-*``: the shipped, CPU-fast VGG-style nets (3x3 convs, BN folded at
  export), sized by a width multiplier. Accuracy per FLOP on 48x48 faces comes
  from spending compute at 24x24 and 12x12, not at full resolution.
* ``resnet18``: a large teacher used only for distillation (trained where a
  GPU is available); never shipped.

Input: ``(N, 1, 48, 48)`` float tensors already normalised by
:func:`pipeline.classify.preprocess.normalise`.
"""

from __future__ import annotations

from typing import Callable

import torch
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
