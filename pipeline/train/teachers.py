"""Distillation teachers: a checkpoint run online, or a bank of its logits computed once.

Online distillation runs every teacher on every training step. A **teacher-logit bank** moves
that cost out of the loop: the teachers' logits for ``views`` augmented views of every
training face, computed once (on whatever machine holds the teachers: a lent GPU for the
ResNet-18 teachers) and stored as float16, (teachers, views, faces, 7). A view is a table of
random parameters per face (:func:`view_table`, always drawn on the CPU from the bank's seed, so
every machine draws the same numbers), CutMix included: each face is mixed or not, with a
partner and a box of its own, so the stored logits are the teacher's for exactly the image the
student gets, whatever batch it lands in. Epoch ``e`` trains on view ``e % views``, so each face
meets every view ``epochs / views`` times over a run. The bank records what it was computed from
(the training faces' SHA-256, the augmentation, a digest of view 0) and :meth:`TeacherBank.load`
refuses a bank that does not match the run or cannot be regenerated on this machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.train.augment import VIEW_COLUMNS, AugmentConfig, apply_view, box_mask, draw_mix, draw_view
from pipeline.train.checkpoint import load_checkpoint_model
from pipeline.train.data import autocast, to_input

Teacher = Callable[[torch.Tensor], torch.Tensor]
_PARTNER = len(VIEW_COLUMNS)  # the first CutMix column of a bank's view table


def load_teacher(path: str, device: torch.device) -> Teacher:
    """A teacher's fp32 logits for a batch of normalised faces.

    On CPU through ONNX Runtime in fp32: the same function (logits within 1e-5 of torch's) at
    ~1.8x torch's speed on these small convolutions, where the teacher is a third of each step.
    """
    model = load_checkpoint_model(path, device)[0]
    if device.type != "cpu":

        @torch.no_grad()
        def run_torch(x: torch.Tensor) -> torch.Tensor:
            with autocast(device):
                return model(x).float()

        return run_torch
    from pipeline.classify.engine import onnx_bytes, onnx_runner

    run = onnx_runner(onnx_bytes(model), torch.get_num_threads())
    return lambda x: torch.from_numpy(run(x.contiguous().numpy()))


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teachers' mean softened distribution from their logits, (teachers, n, 7) -> (n, 7)."""
    return F.softmax(logits.float() / temperature, dim=-1).mean(0)


def view_table(views_seed: int, view: int, n: int, cfg: AugmentConfig) -> torch.Tensor:
    """View ``view`` of ``n`` faces, CutMix included: the same numbers on every machine (CPU generator)."""
    gen = torch.Generator().manual_seed(views_seed * 1_000_003 + view)
    return torch.cat([draw_view(n, cfg, gen), draw_mix(n, cfg, gen)], dim=1)


def view_batch(
    x_u8: torch.Tensor, idx: torch.Tensor, table: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Faces ``idx`` of ``x_u8`` (all training faces, uint8) as a view table shows them.

    Returns the normalised images, each face's CutMix partner (-1: none) and the share of each
    image that is its own face (1 where unmixed), which weights the two faces' labels. ``table``
    lies on the faces' device (callers move it once per view, not per batch).
    """
    rows = table[idx]
    x = apply_view(to_input(x_u8[idx]), rows[:, :_PARTNER])
    partner = rows[:, _PARTNER].long()
    y0, y1, x0, x1 = rows[:, _PARTNER + 1 :].long().unbind(1)
    h, w = x.shape[2:]
    lam = 1.0 - ((y1 - y0) * (x1 - x0)).float() / (h * w)
    mixed = partner >= 0
    if mixed.any():
        other = apply_view(to_input(x_u8[partner[mixed]]), table[partner[mixed], :_PARTNER])
        box = box_mask((h, w), y0[mixed], y1[mixed], x0[mixed], x1[mixed])
        x[mixed] = torch.where(box, other, x[mixed])
    return x, partner, lam


def faces_sha256(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y.astype(np.int64)).tobytes())
    return digest.hexdigest()


def _view_digest(table: torch.Tensor) -> str:
    # Rounded, so that a libm's last bit does not refuse a bank the geometry would reproduce.
    return hashlib.sha256(np.round(table.numpy().astype(np.float64), 5).tobytes()).hexdigest()


@dataclass(frozen=True)
class BankInfo:
    """What a bank was computed from; stored next to its logits."""

    views: int
    seed: int
    augment: dict
    teachers: list[str]
    faces_sha256: str
    view0_sha256: str

    def augment_config(self) -> AugmentConfig:
        kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()}
        return AugmentConfig(**kw)


def augment_fields(cfg: AugmentConfig) -> dict:
    """An augmentation as the JSON a bank stores (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


@dataclass(frozen=True)
class TeacherBank:
    logits: torch.Tensor  # (teachers, views, faces, 7), float16
    info: BankInfo

    @property
    def views(self) -> int:
        return self.info.views

    def view(self, index: int) -> torch.Tensor:
        """View ``index``'s table, a row per face (:func:`view_batch` reads it)."""
        return view_table(self.info.seed, index, self.logits.shape[2], self.info.augment_config())

    def targets(self, view: int, idx: torch.Tensor, temperature: float) -> torch.Tensor:
        """Soft targets of faces ``idx`` (training-set positions) in view ``view``."""
        return soft_targets(self.logits[:, view, idx.cpu()], temperature).to(idx.device)

    def save(self, path: str | Path) -> None:
        # np.savez appends .npz to a name without it; writing through a file object keeps the name given.
        with open(path, "wb") as fh:
            np.savez(fh, logits=self.logits.numpy(), info=np.array(json.dumps(asdict(self.info))))

    @classmethod
    def load(cls, path: str | Path, x_train: np.ndarray, y_train: np.ndarray, cfg: AugmentConfig) -> TeacherBank:
        """Read a bank and check it belongs to these training faces and this augmentation."""
        try:
            with np.load(path, allow_pickle=False) as data:
                logits, raw = data["logits"], str(data["info"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not a teacher-logit bank ({exc})") from exc
        try:
            info = BankInfo(**json.loads(raw))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable bank description ({exc})") from exc
        if logits.ndim != 4 or logits.shape[1:] != (info.views, len(x_train), 7):
            raise ValueError(f"{path}: logits {logits.shape} do not fit {info.views} views of {len(x_train)} faces")
        if info.faces_sha256 != faces_sha256(x_train, y_train):
            raise ValueError(f"{path} was computed for other training faces (a different npz or split)")
        wanted = augment_fields(cfg)
        if info.augment != wanted:
            diff = sorted(k for k in wanted if info.augment.get(k) != wanted[k])
            raise ValueError(f"{path} was computed with another augmentation ({', '.join(diff)} differ): "
                             "train with the bank's settings or build a bank for these")
        bank = cls(torch.from_numpy(logits), info)
        if _view_digest(bank.view(0)) != info.view0_sha256:
            raise ValueError(f"{path}: this machine's torch ({torch.__version__}) draws other views from the "
                             "bank's seed than the machine that built it; rebuild the bank here")
        return bank


@torch.no_grad()
def build_bank(
    teachers: Sequence[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    views: int,
    cfg: AugmentConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch: int = 1024,
) -> TeacherBank:
    """The teachers' logits for ``views`` views of every training face (progress bar over views)."""
    if views < 1:
        raise ValueError(f"views must be at least 1, not {views}")
    dev = torch.device(device)
    runners = [load_teacher(p, dev) for p in teachers]
    n = len(x_train)
    out = torch.empty(len(runners), views, n, 7, dtype=torch.float16)
    faces = torch.from_numpy(x_train).to(dev)
    for v in tqdm(range(views), desc="teacher-logit bank", unit="view", mininterval=2):
        table = view_table(seed, v, n, cfg).to(dev)
        for i in range(0, n, batch):
            xb = view_batch(faces, torch.arange(i, min(i + batch, n), device=dev), table)[0]
            for t, run in enumerate(runners):
                out[t, v, i : i + batch] = run(xb).cpu().half()
    info = BankInfo(
        views=views,
        seed=seed,
        augment=augment_fields(cfg),
        teachers=[str(p) for p in teachers],
        faces_sha256=faces_sha256(x_train, y_train),
        view0_sha256=_view_digest(view_table(seed, 0, n, cfg)),
    )
    return TeacherBank(out, info)


if __name__ == "__main__":  # ``python -m pipeline.train.teachers``: `emotionpipe teacher-bank` on a bare GPU box
    import typer

    from pipeline.cli.train import teacher_bank

    typer.run(teacher_bank)
