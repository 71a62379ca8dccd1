"""Rebuild a trained model from a run's checkpoint or from shipped weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.classify.model import build_model
from pipeline.train.qat import to_qat


def load_checkpoint_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model in a ``best.pt``/``last.pt`` checkpoint or shipped safetensors (eval mode).

    Shipped weights name their architecture in the card next to them, so a
    fresh machine can fine-tune or distil from what the package ships.
    """
    if str(path).endswith(".safetensors"):
        from pipeline.classify.engine import load_torch_model, read_card

        card = read_card(Path(path))
        return load_torch_model(Path(path), card.arch).to(device), {"arch": card.arch}
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["arch"])
    if ckpt.get("qat"):
        sim = to_qat(model)
        sim.load_state_dict(ckpt["model"])
        model = sim.served()  # the int8 tooling rounds these weights as the simulation did
    else:
        model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
