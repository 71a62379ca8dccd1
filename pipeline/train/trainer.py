"""Training loop for the emotion CNNs (CPU or CUDA, resumable, optional distillation).

Everything an epoch needs lives on the training device: the uint8 dataset
(66 MB), augmentation and the teachers, or instead of teachers a bank of their logits
(``teacher_bank``, :mod:`pipeline.train.teachers`). A checkpoint is written every epoch
(``last.pt``) and whenever the validation accuracy improves (``best.pt``), so a
killed run continues with ``--resume`` where it stopped. With ``swa_start`` the
weight average is also written every epoch (``swa.pt``). With ``qat_epochs`` the last
epochs train the folded emonet-r through the served int8 model's rounding
(:mod:`pipeline.train.qat`); from then on validation reads that simulated int8 model
and picks ``best.pt`` among those epochs (the fp32 pick before them is ``best-fp32.pt``).
With ``with_val`` the validation faces join the training set (a last fine-tune of a fixed
length): ``best.pt`` is then simply the last epoch's EMA, since the split can no longer pick.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from pipeline.classify.metrics import classification_report
from pipeline.classify.model import RepNet, build_model
from pipeline.train.augment import AugmentConfig, augment, cutmix
from pipeline.train.checkpoint import load_checkpoint_model
from pipeline.train.data import autocast, class_weights, load_split, to_input
from pipeline.train.qat import QuantSim, calibrate, calibration_faces, to_qat
from pipeline.train.teachers import TeacherBank, load_teacher, soft_targets, view_batch

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/emonet-s"
    arch: str = "emonet-s"
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    warmup_epochs: int = 3
    label_smoothing: float = 0.0
    class_weighting: str = "sqrt"  # none | sqrt | inverse
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    time_budget_min: float | None = None
    teachers: list[str] = field(default_factory=list)
    teacher_bank: str | None = None  # distil from stored teacher logits instead of running teachers
    init: str | None = None
    kd_alpha: float = 0.7
    kd_temperature: float = 4.0
    swa_start: int = 0  # 0 = off; else average the raw weights at the end of every epoch from this one on
    swa_lr: float = 0.01
    qat_epochs: int = 0  # 0 = off; else the last N epochs train the folded model with simulated int8 (emonet-r)
    with_val: bool = False  # train on train + val; validation figures are then no measure
    resume: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@torch.no_grad()
def predict_logits(model: nn.Module, x_u8: torch.Tensor, batch: int = 1024, tta: bool = False) -> torch.Tensor:
    """Logits for uint8 faces; ``tta`` averages the image and its mirror."""
    model.eval()
    out = []
    dev = next(model.parameters()).device
    for i in range(0, len(x_u8), batch):
        xb = to_input(x_u8[i : i + batch].to(dev))
        with autocast(dev):
            logits = model(xb).float()
            if tta:
                logits = (logits + model(torch.flip(xb, dims=[3])).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out)


def shared_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, share: float | torch.Tensor, weight: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """Class-weighted cross-entropy (torch's weighted mean), each face's term times its ``share`` of the label.

    A scalar share is CutMix drawn per batch; a per-face tensor is a bank's CutMix, recorded per face.
    """
    per_face = F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing, reduction="none")
    return (share * per_face).sum() / weight[y].sum()


def _lr_at(step: float, cfg: TrainConfig, steps_per_epoch: int, total_epochs: int) -> float:
    warm = cfg.warmup_epochs * steps_per_epoch
    total = max(total_epochs * steps_per_epoch, warm + 1)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.swa_start and step >= cfg.swa_start * steps_per_epoch:
        return cfg.swa_lr  # SWA wants snapshots from one wide region, not a schedule that settles into a point
    progress = (step - warm) / (total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class Trainer:
    """Owns model, optimiser, EMA and data for one run directory."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        x_tr, y_tr = load_split(cfg.data, "train")
        x_va, y_va = load_split(cfg.data, "val")
        self.n_train_split = len(x_tr)  # the int8 tooling calibrates on the train split alone
        if cfg.with_val:
            x_tr, y_tr = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
        self.x_train = torch.from_numpy(x_tr).to(self.device)
        self.y_train = torch.from_numpy(y_tr).to(self.device)
        self.x_val, self.y_val = torch.from_numpy(x_va), y_va
        self.weights = class_weights(y_tr, cfg.class_weighting).to(self.device)

        self.model = build_model(cfg.arch)
        if cfg.init:
            start, meta = load_checkpoint_model(cfg.init)
            if meta["arch"] != cfg.arch:
                raise ValueError(f"--init {cfg.init} holds {meta['arch']}, not {cfg.arch}")
            self.model = start  # as stored: emonet-r from shipped weights or a QAT run is already folded
        if cfg.qat_epochs and (cfg.swa_start or not isinstance(self.model, RepNet)):
            raise ValueError("--qat-epochs needs --arch emonet-r and no --swa-start")
        self._optimise(self.model)
        self.qat = False
        self.calibration: torch.Tensor | None = None  # the int8 tooling's calibration faces, once QAT starts
        # Stochastic weight averaging (Izmailov et al. 2018): an equal-weight mean over epochs, a far longer
        # horizon than the per-step EMA; its BatchNorm statistics are recomputed, since averaged weights
        # make averaged running statistics meaningless.
        self.swa: AveragedModel | None = None
        self.bn_faces: torch.Tensor | None = None
        if cfg.swa_start:
            self.swa = AveragedModel(self.model)
            # 8,192 clean training faces pin its BN statistics well enough at under a third of a full pass.
            idx = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(cfg.seed))[:8192]
            self.bn_faces = self.x_train[idx.to(self.device)]
        self.bank: TeacherBank | None = None
        if cfg.teacher_bank:
            if cfg.teachers or cfg.with_val:
                raise ValueError("--teacher-bank holds the teachers' targets for the training split alone: "
                                 "it does not combine with --teacher or --with-val")
            self.bank = TeacherBank.load(cfg.teacher_bank, x_tr, y_tr, cfg.augment)
            log.info("distilling from the teacher-logit bank %s (%d views; teachers %s)",
                     cfg.teacher_bank, self.bank.views, ", ".join(self.bank.info.teachers))
        self.teachers = [load_teacher(p, self.device) for p in cfg.teachers]
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.seed)
        self.epoch = 0
        self.total_epochs = cfg.epochs
        self.best_acc = 0.0
        self.history: list[dict] = []
        if cfg.resume and (self.out / "last.pt").exists():
            self._restore(self.out / "last.pt")

    def _optimise(self, model: nn.Module) -> None:
        """Make ``model`` the one trained, with a fresh optimiser and weight EMA around it."""
        # channels-last convolutions: 15-25 % faster training steps on CPU too (emonet-s/m/r, QAT; 2 threads).
        self.model = model.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        cfg = self.cfg
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )

    def _enter_qat(self, model: nn.Module) -> None:
        self._optimise(to_qat(model.cpu()))
        self.qat = True
        if self.calibration is None:
            faces = calibration_faces(self.x_train[: self.n_train_split].cpu().numpy())
            self.calibration = to_input(torch.from_numpy(faces).to(self.device))

    def _start_qat(self) -> None:
        # Go on from the weights the run would pick now (usually the EMA's), folded.
        source = self.history[-1]["source"] if self.history else "raw"
        log.info("epoch %d: quantisation-aware training from the %s weights", self.epoch + 1, source)
        self._enter_qat(copy.deepcopy(self._sources()[source]))
        # From here on best.pt is picked on simulated int8 accuracy. The fp32 pick so far is kept as
        # best-fp32.pt, so the two are compared like with like (each exported as int8), not fp32 vs int8.
        best = self.out / "best.pt"
        if best.exists():
            best.replace(self.out / "best-fp32.pt")
        self.best_acc = 0.0

    # -- checkpoints -------------------------------------------------------
    def _restore(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt.get("qat"):
            self._enter_qat(self.model)
        self.model.load_state_dict(ckpt["model_raw"])
        self.ema.load_state_dict(ckpt["ema"])
        if self.swa is not None and "swa" in ckpt:
            self.swa.load_state_dict(ckpt["swa"])
        self.opt.load_state_dict(ckpt["opt"])
        self.epoch, self.total_epochs = ckpt["epoch"], ckpt["total_epochs"]
        self.best_acc, self.history = ckpt["best_acc"], ckpt["history"]
        self.gen.set_state(ckpt["gen"])
        torch.set_rng_state(ckpt["cpu_rng"])
        log.info("resumed %s at epoch %d/%d (best %.4f)", path, self.epoch, self.total_epochs, self.best_acc)

    def _save(self, val: dict) -> None:
        meta = {
            "arch": self.cfg.arch,
            "epoch": self.epoch,
            "total_epochs": self.total_epochs,
            "qat": self.qat,
            "validation_seen": self.cfg.with_val,
        }
        config = _jsonable(asdict(self.cfg))
        sources = self._sources()
        if self.cfg.with_val or val["accuracy"] >= self.best_acc:
            self.best_acc = val["accuracy"]
            self._save_model(sources[val["source"]], self.out / "best.pt", meta, val, config)
        if "swa" in sources:
            # The running average itself, whatever the validation says: it is the run's result
            # that was not picked on the validation split.
            swa_val = {"source": "swa", "accuracy": val["by_source"]["swa"]}
            self._save_model(sources["swa"], self.out / "swa.pt", meta, swa_val, config)
        # last.pt goes last and carries this epoch's best: a run killed before it redoes the epoch,
        # and a resumed run compares against the true best rather than the one before this epoch.
        ckpt = {
            **meta,
            "model_raw": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "best_acc": self.best_acc,
            "history": self.history,
            "gen": self.gen.get_state(),
            "cpu_rng": torch.get_rng_state(),
            "config": config,
        }
        if self.swa is not None:
            ckpt["swa"] = self.swa.state_dict()
        _save_atomic(ckpt, self.out / "last.pt")

    @staticmethod
    def _save_model(model: nn.Module, path: Path, meta: dict, val: dict, config: object) -> None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _save_atomic({**meta, "model": state, "val": val, "config": config}, path)

    # -- loop --------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, soft: torch.Tensor | None, ya: torch.Tensor, yb: torch.Tensor,
              lam: float | torch.Tensor) -> torch.Tensor:
        weight, smoothing = self.weights, self.cfg.label_smoothing
        ce = shared_cross_entropy(logits, ya, lam, weight, smoothing)
        if isinstance(lam, torch.Tensor) or lam < 1.0:
            ce = ce + shared_cross_entropy(logits, yb, 1 - lam, weight, smoothing)
        if soft is None:
            return ce
        t = self.cfg.kd_temperature
        kd = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="batchmean") * t * t
        return self.cfg.kd_alpha * kd + (1 - self.cfg.kd_alpha) * ce

    def _batch(
        self, idx: torch.Tensor, table: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | torch.Tensor]:
        """Images, both labels and the first label's share for training faces ``idx``."""
        ya = self.y_train[idx]
        if table is not None:  # the bank's view, CutMix recorded per face
            xb, partner, lam = view_batch(self.x_train, idx, table)
            return xb, ya, self.y_train[partner.clamp(min=0)], lam
        xb = augment(to_input(self.x_train[idx]), self.cfg.augment, self.gen)
        xb, mixed_with, lam_batch = cutmix(xb, self.cfg.augment, self.gen)
        return xb, ya, ya if mixed_with is None else ya[mixed_with], lam_batch

    @torch.no_grad()
    def _teacher_targets(self, xb: torch.Tensor, view: int, idx: torch.Tensor) -> torch.Tensor | None:
        if self.bank is not None:
            return self.bank.targets(view, idx, self.cfg.kd_temperature)
        if self.teachers:
            return soft_targets(torch.stack([m(xb) for m in self.teachers]), self.cfg.kd_temperature)
        return None

    def train_epoch(self) -> float:
        cfg = self.cfg
        self.model.train()
        n = len(self.x_train)
        steps = n // cfg.batch_size
        perm = torch.randperm(n, generator=self.gen, device=self.device)
        view = self.epoch % self.bank.views if self.bank is not None else 0
        table = self.bank.view(view).to(self.device) if self.bank is not None else None
        total = 0.0
        bar = tqdm(range(steps), desc=f"epoch {self.epoch + 1}/{self.total_epochs}", leave=False, mininterval=2)
        for i in bar:
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb, ya, yb, lam = self._batch(idx, table)
            xb = xb.contiguous(memory_format=torch.channels_last)
            lr = _lr_at(self.epoch * steps + i, cfg, steps, self.total_epochs)
            for group in self.opt.param_groups:
                group["lr"] = lr
            with autocast(self.device):
                soft = self._teacher_targets(xb, view, idx)
                loss = self._loss(self.model(xb).float(), soft, ya, yb, lam)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.ema.update_parameters(self.model)
            total += loss.item() if i % 20 == 0 else 0.0
        return total / max(1, math.ceil(steps / 20))

    def _sources(self) -> dict[str, nn.Module]:
        sources = {"raw": self.model, "ema": self.ema.module}
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            sources["swa"] = self.swa.module
        return sources

    def _average_weights(self) -> None:
        faces = self.bn_faces
        if self.swa is None or faces is None or self.epoch < self.cfg.swa_start:
            return
        self.swa.update_parameters(self.model)
        with autocast(self.device):
            update_bn((to_input(faces[i : i + 512]) for i in range(0, len(faces), 512)), self.swa, self.device)

    def validate(self) -> dict:
        """The best of raw/EMA/SWA (the EMA with ``with_val``), plus every source's accuracy under ``by_source``."""
        best: dict = {}
        by_source: dict[str, float] = {}
        for source, model in self._sources().items():
            if isinstance(model, QuantSim) and self.calibration is not None:
                calibrate(model, self.calibration)  # the ranges the int8 tooling would measure for these weights
            pred = predict_logits(model, self.x_val).argmax(1).numpy()
            rep = classification_report(self.y_val, pred)
            by_source[source] = rep.accuracy
            picked = source == "ema" if self.cfg.with_val else not best or rep.accuracy > best["accuracy"]
            if picked:
                best = {"source": source, "accuracy": rep.accuracy, "macro_f1": rep.macro_f1}
        return {**best, "by_source": by_source}

    def fit(self) -> float:
        cfg = self.cfg
        log.info("training %s on %s: %d train / %d val faces", cfg.arch, self.device, len(self.x_train), len(self.y_val))
        if cfg.with_val:
            log.info("the validation faces are trained on: best.pt is the last epoch's EMA, whatever validation says")
        started = time.monotonic()
        while self.epoch < self.total_epochs:
            t0 = time.monotonic()
            if cfg.qat_epochs and not self.qat and self.epoch >= self.total_epochs - cfg.qat_epochs:
                self._start_qat()
            if isinstance(self.model, QuantSim) and self.calibration is not None:
                calibrate(self.model, self.calibration)
            loss = self.train_epoch()
            self.epoch += 1
            self._average_weights()
            val = self.validate()
            epoch_s = time.monotonic() - t0
            # Epoch 1 pays for warm-up (cuDNN autotuning, allocator), so size the
            # schedule from epoch 2's pace and the time already spent.
            if cfg.time_budget_min and self.epoch == 2:
                remaining = cfg.time_budget_min * 60 - (time.monotonic() - started)
                fit = max(2, self.epoch + int(remaining / epoch_s))
                if fit < self.total_epochs:
                    log.info("time budget %.1f min: %d epochs instead of %d", cfg.time_budget_min, fit, self.total_epochs)
                    self.total_epochs = fit
            row = {"epoch": self.epoch, "loss": round(loss, 4), **val, "seconds": round(epoch_s, 1), "qat": self.qat}
            self.history.append(row)
            self._save(val)
            others = " ".join(f"{k} {v:.4f}" for k, v in val["by_source"].items() if k != val["source"])
            if cfg.with_val:
                others += "; seen in training"
            print(
                f"[{cfg.arch}{' qat' if self.qat else ''}] epoch {self.epoch}/{self.total_epochs} loss {loss:.4f} "
                f"val acc {val['accuracy']:.4f} ({val['source']}; {others}) macro-F1 {val['macro_f1']:.4f} "
                f"best {self.best_acc:.4f} {epoch_s:.1f}s elapsed {(time.monotonic() - started) / 60:.1f}m",
                flush=True,
            )
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
        return self.best_acc


def _save_atomic(obj: object, path: Path) -> None:
    # Written beside, then renamed: a run killed mid-write (a kill, deploy/gpu-teachers.sh bank) keeps the old file.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _jsonable(obj: object) -> object:
    return json.loads(json.dumps(obj, default=str))
