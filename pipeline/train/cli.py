"""``emotionpipe train`` / ``python -m pipeline.train``: argument parsing only.

argparse rather than the main CLI's typer so the trainer runs on machines
that have torch but not the serving stack (e.g. a lent GPU box).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from pipeline.train.augment import AugmentConfig
from pipeline.train.trainer import TrainConfig, Trainer


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="")
    p = argparse.ArgumentParser(prog="emotionpipe train", description="Train an emotion CNN on FER2013-style npz data.")
    p.add_argument("--data", default="../shared/data/fer2013.npz", help="npz with x_train/y_train/x_val/y_val")
    p.add_argument("--out", default=None, help="run directory (checkpoints); default runs/<arch>")
    p.add_argument("--arch", default=d.arch, help="emonet-s | emonet-m | emonet-l | resnet18")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--class-weighting", choices=["none", "sqrt", "inverse"], default=d.class_weighting)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--time-budget-min", type=float, default=None, help="shrink the schedule to fit this budget")
    p.add_argument("--teacher", action="append", default=[],
                   help="teacher for distillation, best.pt or shipped .safetensors (repeatable)")
    p.add_argument("--init", default=None,
                   help="fine-tune: start from these weights (best.pt or shipped .safetensors)")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    p.add_argument("--kd-alpha", type=float, default=d.kd_alpha)
    p.add_argument("--kd-temperature", type=float, default=d.kd_temperature)
    p.add_argument("--mix-p", type=float, default=0.0, help="CutMix probability")
    p.add_argument("--erase-p", type=float, default=AugmentConfig.erase_p)
    p.add_argument("--swa-start", type=int, default=d.swa_start,
                   help="from this epoch on, hold the LR at --swa-lr and average the weights of every epoch (0 = off)")
    p.add_argument("--swa-lr", type=float, default=d.swa_lr)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = TrainConfig(
        data=args.data,
        out=args.out or f"runs/{args.arch}",
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        class_weighting=args.class_weighting,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        time_budget_min=args.time_budget_min,
        teachers=args.teacher,
        init=args.init,
        warmup_epochs=args.warmup_epochs,
        kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature,
        swa_start=args.swa_start,
        swa_lr=args.swa_lr,
        resume=args.resume,
    )
    cfg = replace(cfg, augment=replace(cfg.augment, mix_p=args.mix_p, erase_p=args.erase_p))
    best = Trainer(cfg).fit()
    print(f"best validation accuracy {best:.4f}; checkpoints in {cfg.out}")
    return 0
