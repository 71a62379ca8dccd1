"""``emotionpipe train`` (also ``python -m pipeline.train``): train an emotion CNN on FER2013-style npz data.

The defaults are :class:`pipeline.train.trainer.TrainConfig`'s, spelled out so that ``--help`` shows
them without importing torch (``tests/unit/test_cli.py`` keeps the two in step).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import typer

__all__ = ["teacher_bank", "train"]


def train(
    data: Annotated[str, typer.Option(help="npz with x_train/y_train/x_val/y_val.")] = "../shared/data/fer2013.npz",
    out: Annotated[str | None, typer.Option(help="Run directory (checkpoints); default runs/<arch>.")] = None,
    arch: Annotated[str, typer.Option(help="emonet-t | emonet-s | emonet-m | emonet-l | emonet-r | resnet18")] = "emonet-s",
    epochs: Annotated[int, typer.Option()] = 120,
    batch_size: Annotated[int, typer.Option()] = 128,
    lr: Annotated[float, typer.Option()] = 0.05,
    weight_decay: Annotated[float, typer.Option()] = 5e-4,
    label_smoothing: Annotated[float, typer.Option()] = 0.0,
    class_weighting: Annotated[Literal["none", "sqrt", "inverse"], typer.Option()] = "sqrt",
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    time_budget_min: Annotated[float | None, typer.Option(help="Shrink the schedule to fit this budget.")] = None,
    teacher: Annotated[list[str] | None, typer.Option(
        help="Teacher for distillation, best.pt or shipped .safetensors (repeatable).")] = None,
    teacher_bank: Annotated[str | None, typer.Option(
        help="Distil from a teacher-logit bank (`emotionpipe teacher-bank`) instead of running --teacher.")] = None,
    init: Annotated[str | None, typer.Option(
        help="Fine-tune: start from these weights (best.pt or shipped .safetensors).")] = None,
    warmup_epochs: Annotated[int, typer.Option()] = 3,
    kd_alpha: Annotated[float, typer.Option()] = 0.7,
    kd_temperature: Annotated[float, typer.Option()] = 4.0,
    mix_p: Annotated[float, typer.Option(help="CutMix probability.")] = 0.0,
    erase_p: Annotated[float, typer.Option(help="Random-erasing probability.")] = 0.5,
    swa_start: Annotated[int, typer.Option(
        help="From this epoch on, hold the LR at --swa-lr and average the weights of every epoch (0 = off).")] = 0,
    swa_lr: Annotated[float, typer.Option()] = 0.01,
    qat_epochs: Annotated[int, typer.Option(
        help="Train the last N epochs through the served int8 model's rounding (emonet-r; 0 = off).")] = 0,
    with_val: Annotated[bool, typer.Option(
        "--with-val",
        help="Train on the validation faces too (a last fine-tune of fixed length): best.pt is the last epoch's "
        "EMA and validation figures are no longer a measure.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <out>/last.pt.")] = False,
) -> None:
    """Train an emotion CNN on FER2013-style npz data (checkpoints every epoch; --resume continues)."""
    from dataclasses import replace

    from pipeline.train.trainer import TrainConfig, Trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = TrainConfig(
        data=data,
        out=out or f"runs/{arch}",
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        class_weighting=class_weighting,
        seed=seed,
        device=device,
        threads=threads,
        time_budget_min=time_budget_min,
        teachers=list(teacher or []),
        teacher_bank=teacher_bank,
        init=init,
        warmup_epochs=warmup_epochs,
        kd_alpha=kd_alpha,
        kd_temperature=kd_temperature,
        swa_start=swa_start,
        swa_lr=swa_lr,
        qat_epochs=qat_epochs,
        with_val=with_val,
        resume=resume,
    )
    cfg = replace(cfg, augment=replace(cfg.augment, mix_p=mix_p, erase_p=erase_p))
    best = Trainer(cfg).fit()
    typer.echo(f"best validation accuracy {best:.4f}; checkpoints in {cfg.out}")


def teacher_bank(
    teacher: Annotated[list[str], typer.Option(help="Teacher, best.pt or shipped .safetensors (repeatable).")],
    out: Annotated[str, typer.Option(help="The bank file to write (.npz).")],
    views: Annotated[int, typer.Option(
        min=1, help="Augmented views of every training face (epoch e trains on view e % views).")] = 100,
    data: Annotated[str, typer.Option(help="npz with x_train/y_train.")] = "../shared/data/fer2013.npz",
    seed: Annotated[int, typer.Option(help="Seed of the views (not of the training run).")] = 0,
    erase_p: Annotated[float, typer.Option(
        help="Random-erasing probability (must match the training run's).")] = 0.5,
    mix_p: Annotated[float, typer.Option(
        help="CutMix probability, per face (must match the training run's --mix-p).")] = 0.0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Faces per teacher forward (raise it on a GPU).")] = 1024,
) -> None:
    """Compute teachers' logits for VIEWS augmented views of every training face, for `train --teacher-bank`."""
    from dataclasses import replace

    import torch

    from pipeline.train.augment import AugmentConfig
    from pipeline.train.data import load_split
    from pipeline.train.teachers import build_bank

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if threads:
        torch.set_num_threads(threads)
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    x, y = load_split(data, "train")
    cfg = replace(AugmentConfig(), erase_p=erase_p, mix_p=mix_p)
    bank = build_bank(teacher, x, y, views, cfg, seed=seed, device=dev, batch=batch)
    bank.save(out)
    size = bank.logits.numel() * 2 / 2**20
    typer.echo(f"{out}: {len(teacher)} teacher(s) x {views} views x {len(x)} faces ({size:.1f} MiB)")
