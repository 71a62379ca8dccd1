"""Batched augmentation on tensors, so it runs on the GPU when training does.

Per-image CPU pipelines starve a GPU on 48x48 images; one affine grid per
batch keeps augmentation a few kernels regardless of batch size, and on the
2-core CPU it avoids DataLoader worker processes competing for cores.

Drawing a view's random parameters (:func:`draw_view`) is apart from applying them
(:func:`apply_view`), so a teacher-logit bank can regenerate on one machine the exact views
whose teacher logits another machine computed (:mod:`pipeline.train.teachers`).
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


# Columns of a view table: one row of random parameters per face.
VIEW_COLUMNS = ("angle", "scale", "tx", "ty", "flip", "contrast", "brightness", "y0", "x0", "eh", "ew", "erase")
_COL = {name: i for i, name in enumerate(VIEW_COLUMNS)}


def draw_view(n: int, cfg: AugmentConfig, gen: torch.Generator, size: tuple[int, int] = (48, 48)) -> torch.Tensor:
    """Random parameters of one augmented view of ``n`` faces: an (n, len(VIEW_COLUMNS)) table.

    Drawn on ``gen``'s device in a fixed order (the stream the trainer has always used).
    """
    h, w = size
    dev = gen.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, device=dev) * (hi - lo) + lo

    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180.0)
    scale = uniform(*cfg.scale)
    tx = uniform(-cfg.translate, cfg.translate) * 2.0
    ty = uniform(-cfg.translate, cfg.translate) * 2.0
    flip = torch.ones(n, device=dev)
    if cfg.flip:
        flip = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    contrast = 1.0 + (torch.rand(n, generator=gen, device=dev) * 2 - 1) * cfg.contrast
    brightness = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * cfg.brightness * 2
    zeros = torch.zeros(n, device=dev)
    y0 = x0 = eh = ew = erase = zeros
    if cfg.erase_p > 0:
        area = uniform(*cfg.erase_area)
        aspect = torch.exp(torch.rand(n, generator=gen, device=dev) * 2.2 - 1.1)
        eh = (torch.sqrt(area * aspect) * h).clamp(1, h - 1)
        ew = (torch.sqrt(area / aspect) * w).clamp(1, w - 1)
        y0 = torch.rand(n, generator=gen, device=dev) * (h - eh)
        x0 = torch.rand(n, generator=gen, device=dev) * (w - ew)
        erase = (torch.rand(n, generator=gen, device=dev) < cfg.erase_p).float()
    return torch.stack([angle, scale, tx, ty, flip, contrast, brightness, y0, x0, eh, ew, erase], dim=1)


# Columns of a recorded CutMix, one row per face: the face whose patch it receives (-1: none) and the box.
MIX_COLUMNS = ("partner", "box_y0", "box_y1", "box_x0", "box_x1")


def draw_mix(n: int, cfg: AugmentConfig, gen: torch.Generator, size: tuple[int, int] = (48, 48)) -> torch.Tensor:
    """CutMix recorded per face (not per batch): an (n, len(MIX_COLUMNS)) table on ``gen``'s device.

    Each face is mixed with probability ``mix_p``, with a partner drawn from all ``n`` faces, so the
    mixed image does not depend on the batch it lands in; a bank can compute its teacher logits.
    """
    if cfg.mix_alpha != 1.0:
        raise ValueError(f"a recorded CutMix draws its area uniformly (mix_alpha 1), not Beta({cfg.mix_alpha})")
    h, w = size
    dev = gen.device
    mixed = torch.rand(n, generator=gen, device=dev) < cfg.mix_p
    partner = torch.randint(n, (n,), generator=gen, device=dev)
    cut = torch.sqrt(1.0 - torch.rand(n, generator=gen, device=dev))
    ch, cw = (h * cut).long(), (w * cut).long()
    cy = torch.randint(h, (n,), generator=gen, device=dev)
    cx = torch.randint(w, (n,), generator=gen, device=dev)
    y0, y1 = (cy - ch // 2).clamp(min=0), (cy + ch // 2).clamp(max=h)
    x0, x1 = (cx - cw // 2).clamp(min=0), (cx + cw // 2).clamp(max=w)
    table = torch.stack([partner, y0, y1, x0, x1], dim=1).float()
    table[~mixed] = torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0], device=dev)
    return table


def apply_view(x: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """Normalised faces (n,1,h,w) under a view table from :func:`draw_view` (n rows, any device).

    Rotation, scale, translation and horizontal flip in one grid_sample; brightness/contrast
    jitter around each image's mean; then one zeroed rectangle per face selected for erasing.
    """
    n, _, h, w = x.shape
    v = view.to(x.device)
    col = {name: v[:, i] for name, i in _COL.items()}
    cos, sin = torch.cos(col["angle"]) / col["scale"], torch.sin(col["angle"]) / col["scale"]
    flip = col["flip"]
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, col["tx"]], dim=1), torch.stack([sin * flip, cos, col["ty"]], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * col["contrast"].view(n, 1, 1, 1) + mean + col["brightness"].view(n, 1, 1, 1)

    y0, x0 = col["y0"], col["x0"]
    inside = box_mask((h, w), y0, y0 + col["eh"], x0, x0 + col["ew"])
    return x.masked_fill(inside & (col["erase"] > 0).view(n, 1, 1, 1), 0.0)


def box_mask(
    size: tuple[int, int], y0: torch.Tensor, y1: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor
) -> torch.Tensor:
    """(n, 1, h, w) mask of one box per image, rows [y0, y1) and columns [x0, x1) (bounds may be fractional)."""
    h, w = size
    ys = torch.arange(h, device=y0.device).view(1, h, 1)
    xs = torch.arange(w, device=y0.device).view(1, 1, w)
    rows = (ys >= y0.view(-1, 1, 1)) & (ys < y1.view(-1, 1, 1))
    cols = (xs >= x0.view(-1, 1, 1)) & (xs < x1.view(-1, 1, 1))
    return (rows & cols).unsqueeze(1)


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Geometric + photometric + erasing (the label-preserving part), freshly drawn from ``gen``."""
    return apply_view(x, draw_view(x.shape[0], cfg, gen, size=(x.shape[2], x.shape[3])))


def cutmix(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """CutMix with probability ``mix_p``: (x, perm, lam), the pasted patches coming from ``x[perm]``.

    ``lam`` is the share of each image left as it was (1.0 and ``perm`` None when nothing was mixed);
    targets mix the same way: ``lam * t + (1 - lam) * t[perm]``.
    """
    if cfg.mix_p <= 0 or torch.rand(1, generator=gen, device=gen.device).item() >= cfg.mix_p:
        return x, None, 1.0
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
    return x, perm, lam
