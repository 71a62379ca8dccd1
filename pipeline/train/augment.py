"""Batched augmentation on tensors, so it runs on the GPU when training does.

Per-image CPU pipelines starve a GPU on 48x48 images; one affine grid per
batch keeps augmentation a few kernels regardless of batch size, and on the
2-core CPU it avoids DataLoader worker processes competing for cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 12.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.10
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    erase_p: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.2)
    mix_p: float = 0.0
    mix_alpha: float = 1.0


def random_affine(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Rotation, scale, translation and horizontal flip in one grid_sample."""
    n = x.shape[0]
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, device=dev) * (hi - lo) + lo

    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180.0)
    scale = uniform(*cfg.scale)
    tx = uniform(-cfg.translate, cfg.translate) * 2.0
    ty = uniform(-cfg.translate, cfg.translate) * 2.0
    flip = torch.ones(n, device=dev)
    if cfg.flip:
        flip = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], dim=1), torch.stack([sin * flip, cos, ty], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness/contrast jitter around each image's mean (inputs are normalised)."""
    n = x.shape[0]
    dev = x.device
    c = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen, device=dev) * 2 - 1) * cfg.contrast
    b = (torch.rand(n, 1, 1, 1, generator=gen, device=dev) * 2 - 1) * cfg.brightness * 2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean + b


def random_erase(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Zero one random rectangle per selected image (vectorised with masks)."""
    n, _, h, w = x.shape
    dev = x.device
    area = torch.rand(n, generator=gen, device=dev) * (cfg.erase_area[1] - cfg.erase_area[0]) + cfg.erase_area[0]
    aspect = torch.exp(torch.rand(n, generator=gen, device=dev) * 2.2 - 1.1)
    eh = (torch.sqrt(area * aspect) * h).clamp(1, h - 1)
    ew = (torch.sqrt(area / aspect) * w).clamp(1, w - 1)
    y0 = torch.rand(n, generator=gen, device=dev) * (h - eh)
    x0 = torch.rand(n, generator=gen, device=dev) * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1))
        & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1))
    )
    selected = torch.rand(n, generator=gen, device=dev) < cfg.erase_p
    mask = (inside & selected.view(n, 1, 1)).unsqueeze(1)
    return x.masked_fill(mask, 0.0)


def cutmix(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """CutMix with probability ``mix_p``: returns (x, y_a, y_b, lam) where lam weights y_a."""
    if cfg.mix_p <= 0 or torch.rand(1, generator=gen, device=gen.device).item() >= cfg.mix_p:
        return x, y, y, 1.0
    n, _, h, w = x.shape
    lam = float(torch.distributions.Beta(cfg.mix_alpha, cfg.mix_alpha).sample().item())
    perm = torch.randperm(n, generator=gen, device=gen.device)
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=gen, device=gen.device))
    cx = int(torch.randint(w, (1,), generator=gen, device=gen.device))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, y, y[perm], lam


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Geometric + photometric + erasing (label-preserving part)."""
    x = random_affine(x, cfg, gen)
    x = photometric(x, cfg, gen)
    if cfg.erase_p > 0:
        x = random_erase(x, cfg, gen)
    return x
