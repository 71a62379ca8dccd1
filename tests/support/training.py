"""Tiny training data and model helpers shared by the training and QAT tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_tiny_npz(path: Path) -> Path:
    """Two separable "expressions" (bright upper half = angry, bright lower half = happy) plus noise."""
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n) * 3  # angry (0) vs happy (3)
        x = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
        x[y == 0, :24] += 150
        x[y == 3, 24:] += 150
        return x, y.astype(np.uint8)

    x_tr, y_tr = make(256)
    x_va, y_va = make(128)
    np.savez(path, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va)
    return path


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Fresh BatchNorm layers are the identity, which would hide a wrong fold of their statistics."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
