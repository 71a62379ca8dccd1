"""Teacher-logit bank: stored logits are the teacher's on views the trainer regenerates (tiny data, CPU)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.train.augment import VIEW_COLUMNS, AugmentConfig, apply_view
from pipeline.train.checkpoint import load_checkpoint_model
from pipeline.train.data import load_split, to_input
from pipeline.train.teachers import TeacherBank, view_batch, view_table
from tests.support.cli import run_cli
from tests.support.training import write_tiny_npz


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bank")
    data = write_tiny_npz(root / "tiny.npz")
    run = root / "teacher"
    args = ["--data", str(data), "--arch", "emonet-t", "--batch-size", "32", "--threads", "1", "--epochs", "2"]
    assert run_cli("train", *args, "--out", str(run)).code == 0
    return data, run / "best.pt"


def test_bank_holds_the_teachers_logits_for_views_regenerated_from_its_seed(
    teacher_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, teacher = teacher_run
    out = tmp_path / "bank.npz"
    built = run_cli("teacher-bank", "--teacher", str(teacher), "--teacher", str(teacher), "--views", "3",
                    "--data", str(data), "--out", str(out), "--seed", "7", "--mix-p", "0.5", "--threads", "1")
    assert built.code == 0, built.output
    x, y = load_split(str(data), "train")
    cfg = AugmentConfig(mix_p=0.5)
    bank = TeacherBank.load(out, x, y, cfg)
    assert bank.logits.shape == (2, 3, len(x), 7) and bank.logits.dtype == torch.float16

    # Regenerated here (as a training run does), view 2 of faces 5..68 gives the teacher the logits stored,
    # CutMix images included.
    model, _ = load_checkpoint_model(teacher)
    idx = torch.arange(5, 69)
    faces, partner, lam = view_batch(torch.from_numpy(x), idx, bank.view(2))
    with torch.no_grad():
        expected = model(faces)
    assert torch.allclose(bank.logits[0, 2, idx].float(), expected, atol=2e-2)
    assert torch.equal(bank.logits[0], bank.logits[1])
    # Views differ from each other, and a view is a function of (seed, index) alone.
    assert not torch.allclose(bank.logits[0, 0], bank.logits[0, 1])
    assert torch.equal(view_table(7, 2, len(x), cfg), bank.view(2))
    # The soft targets are the teachers' mean tempered softmax.
    assert torch.allclose(bank.targets(2, idx, 4.0), torch.softmax(expected / 4.0, dim=1), atol=5e-3)

    # About half the faces are mixed; a mixed face is its own view outside the box and its partner's
    # view inside it, and its share is the area outside the box.
    mixed = (partner >= 0).nonzero().flatten()
    assert 10 < len(mixed) < 54 and torch.all(lam[partner < 0] == 1.0)
    table = bank.view(2)
    k = int(mixed[0])
    own = apply_view(to_input(torch.from_numpy(x[[int(idx[k])]])), table[[int(idx[k])], : len(VIEW_COLUMNS)])
    other = apply_view(to_input(torch.from_numpy(x[[int(partner[k])]])), table[[int(partner[k])], : len(VIEW_COLUMNS)])
    y0, y1, x0, x1 = table[int(idx[k]), len(VIEW_COLUMNS) + 1 :].long().tolist()
    inside = torch.zeros(48, 48, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert torch.allclose(faces[k, 0][inside], other[0, 0][inside])
    assert torch.allclose(faces[k, 0][~inside], own[0, 0][~inside])
    assert float(lam[k]) == pytest.approx(1 - inside.sum().item() / 48**2)


def test_bank_refuses_other_faces_other_augmentation_and_other_files(
    teacher_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, teacher = teacher_run
    out = tmp_path / "bank.npz"
    assert run_cli("teacher-bank", "--teacher", str(teacher), "--views", "1", "--data", str(data),
                   "--out", str(out), "--threads", "1").code == 0
    x, y = load_split(str(data), "train")
    other = x.copy()
    other[0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="other training faces"):
        TeacherBank.load(out, other, y, AugmentConfig())
    with pytest.raises(ValueError, match="erase_p differ"):
        TeacherBank.load(out, x, y, replace(AugmentConfig(), erase_p=0.25))
    with pytest.raises(ValueError, match="mix_p differ"):  # the bank's views record the CutMix too
        TeacherBank.load(out, x, y, replace(AugmentConfig(), mix_p=0.5))
    # A bank whose view 0 this machine draws differently (another torch's generator) is refused too.
    with np.load(out) as stored:
        logits, info = stored["logits"], json.loads(str(stored["info"]))
    info["view0_sha256"] = "0" * 64
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, logits=logits, info=np.array(json.dumps(info)))
    with pytest.raises(ValueError, match="draws other views"):
        TeacherBank.load(tampered, x, y, AugmentConfig())
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="not a teacher-logit bank"):
        TeacherBank.load(junk, x, y, AugmentConfig())


def test_training_from_a_bank_distils_without_running_the_teacher(
    teacher_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, teacher = teacher_run
    bank = tmp_path / "bank.npz"
    assert run_cli("teacher-bank", "--teacher", str(teacher), "--views", "2", "--data", str(data),
                   "--out", str(bank), "--mix-p", "0.5", "--threads", "1").code == 0
    from pipeline.train import trainer

    def no_teacher(*_: object) -> None:
        raise AssertionError("a bank run must not load a teacher")

    monkeypatch.setattr(trainer, "load_teacher", no_teacher)
    seen: list[int] = []
    real_targets = TeacherBank.targets
    monkeypatch.setattr(TeacherBank, "targets", lambda self, v, idx, t: seen.append(v) or real_targets(self, v, idx, t))
    student = tmp_path / "student"
    args = ["--data", str(data), "--arch", "emonet-t", "--batch-size", "32", "--threads", "1",
            "--teacher-bank", str(bank), "--mix-p", "0.5", "--out", str(student)]
    assert run_cli("train", *args, "--epochs", "3").code == 0
    assert load_checkpoint_model(student / "best.pt")[1]["val"]["accuracy"] > 0.5
    # Epoch e trains on view e % views: 8 steps an epoch, views 0, 1, 0.
    assert seen == [0] * 8 + [1] * 8 + [0] * 8

    # A bank is the targets of the training split only, and one source of them.
    with pytest.raises(ValueError, match="does not combine"):
        run_cli("train", *args, "--epochs", "1", "--with-val")
    with pytest.raises(ValueError, match="does not combine"):
        run_cli("train", *args, "--epochs", "1", "--teacher", str(teacher))
    with pytest.raises(ValueError, match="erase_p differ"):
        run_cli("train", *args, "--epochs", "1", "--erase-p", "0.2")
    with pytest.raises(ValueError, match="mix_p differ"):
        run_cli("train", *args, "--epochs", "1", "--mix-p", "0.3")
