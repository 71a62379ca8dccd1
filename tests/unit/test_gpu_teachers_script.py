"""deploy/gpu-teachers.sh, the lent-GPU runbook, run end to end on CPU (tiny data, a small architecture).

A device session is 15 minutes; a broken step there costs the session, so every step is run here
first: the data rebuilt from its two halves, teachers trained detached, stopped early, the bank built from their best epochs, both cut
into $OUT-sized parts, and the parts joined again into files the trainer accepts.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline.train.augment import AugmentConfig
from pipeline.train.checkpoint import load_checkpoint_model
from pipeline.train.data import load_split
from pipeline.train.teachers import TeacherBank
from tests.support.training import write_tiny_npz

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "gpu-teachers.sh"


def _run(step: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", str(SCRIPT), step], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{step}: {done.stderr}"
    return done.stdout


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {seconds} s"
        time.sleep(0.5)


def _kill_if_ours(pid: int) -> None:
    """SIGKILL a process the script started, unless it has exited and its pid now names another one."""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"gpu-teachers.sh" in cmdline or b"pipeline.train" in cmdline:
            os.kill(pid, signal.SIGKILL)


def test_runbook_script_trains_teachers_builds_the_bank_and_ships_both_in_parts(tmp_path: Path) -> None:
    data = write_tiny_npz(tmp_path / "tiny.npz")
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    # The data as `make gpu-pack` ships it: xz, cut in two halves that travel in two calls.
    pack = tmp_path / "pack"
    packed = lzma.compress(data.read_bytes())
    for half, name, part in ((packed[: len(packed) // 2], "a", "part00"), (packed[len(packed) // 2 :], "b", "part01")):
        (pack / name).mkdir(parents=True)
        (pack / name / part).write_bytes(half)
    # Teachers long enough to be stopped by hand, as a device session that runs out of time does.
    env = {**os.environ, "PYTHON": sys.executable, "PACK": str(pack), "WORK": str(work), "OUT": str(out),
           "DEVICE": "cpu", "ARCH": "emonet-t", "EPOCHS": "500", "SEEDS": "1 2", "VIEWS": "2", "MIX_P": "0.5",
           "BANK_BATCH": "100"}
    try:
        _run("stage", env)
        assert "teachers started" in _run("start", env)
        assert (work / "fer2013.npz").read_bytes() == data.read_bytes()
        for seed in (1, 2):
            _wait_for(work / f"t{seed}" / "best.pt", 90)
        assert "/500 loss" in _run("status", env)
        assert "teachers stopped" in _run("bank", env)
        _wait_for(work / "bank.done", 90)
        assert not (work / "t1" / "history.json").exists()  # stopped, not finished
        _run("collect-teachers", env)
        _run("collect-bank", env)
    finally:  # a failed step must not leave detached teachers training on the CI machine
        for pid_file in work.glob("*.pid"):
            _kill_if_ours(int(pid_file.read_text()))

    # Joined here as the model card says, the parts are a teacher and a bank the trainer accepts.
    joined = tmp_path / "joined"
    joined.mkdir()
    for name in ("t1.pt", "t2.pt", "bank.npz"):
        parts = sorted(out.glob(f"{name}.*"))
        assert parts, name
        (joined / name).write_bytes(b"".join(p.read_bytes() for p in parts))
    teacher, meta = load_checkpoint_model(joined / "t1.pt")
    original, _ = load_checkpoint_model(work / "t1" / "best.pt")
    assert meta["arch"] == "emonet-t"
    assert next(teacher.parameters()).dtype == torch.float32  # halved for the trip, widened on load
    x, y = load_split(str(data), "train")
    bank = TeacherBank.load(joined / "bank.npz", x, y, AugmentConfig(mix_p=0.5))
    assert bank.logits.shape == (2, 2, len(x), 7)
    assert bank.info.teachers == [str(work / "t1" / "best.pt"), str(work / "t2" / "best.pt")]
    probe = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(teacher(probe), original(probe), atol=5e-2)
