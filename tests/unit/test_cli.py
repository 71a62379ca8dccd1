"""The `emotionpipe` command tree: help everywhere, defaults in step with the library, usage errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from typing import Any

import pytest
from typer.main import get_command

from pipeline.cli import app
from tests.support.cli import run_cli


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, cmd in getattr(group, "commands", {}).items():
        out += _commands(cmd, (*path, name))
    return out


def _defaults(*path: str) -> dict[str, Any]:
    cmd: Any = get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return {p.name: p.default for p in cmd.params}


COMMANDS = _commands(get_command(app))


def test_the_tree_has_every_command() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"up", "down", "status", "train", "teacher-bank", "eval", "export", "quantize", "analyze", "summary",
            "watch", "token", "cameras add", "cameras export", "alerts add", "alerts events",
            "bench model", "bench arch", "bench pipeline", "bench scaling"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda c: " ".join(c) or "emotionpipe")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    run = run_cli(*path, "--help")
    assert run.code == 0, run.stderr
    assert "Usage: emotionpipe" in run.stdout


def test_help_imports_nothing_heavy() -> None:
    # emotionpipe --help (and python -m pipeline.train on a bare GPU box) must not pay for these at start-up.
    heavy = ("torch", "numpy", "ray", "onnxruntime", "pydantic", "httpx")
    code = f"import sys; from pipeline.cli import app; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_m_pipeline_train_is_the_train_command() -> None:
    run = subprocess.run([sys.executable, "-m", "pipeline.train", "--help"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "python -m pipeline.train" in run.stdout and "--teacher" in run.stdout and "--resume" in run.stdout


def test_python_m_pipeline_train_teachers_is_the_teacher_bank_command() -> None:
    run = subprocess.run([sys.executable, "-m", "pipeline.train.teachers", "--help"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "--views" in run.stdout and "--teacher" in run.stdout


def test_train_defaults_are_the_trainer_defaults() -> None:
    from pipeline.train.augment import AugmentConfig
    from pipeline.train.trainer import TrainConfig

    cli = _defaults("train")
    config = TrainConfig(data="")
    shared = [f.name for f in fields(TrainConfig) if f.name in cli and f.name not in ("out", "data")]
    assert len(shared) >= 15
    for name in shared:
        assert cli[name] == getattr(config, name), name
    assert (cli["mix_p"], cli["erase_p"]) == (AugmentConfig.mix_p, AugmentConfig.erase_p)
    assert _defaults("teacher-bank")["erase_p"] == AugmentConfig.erase_p  # a bank must match the run's views


def test_model_defaults_and_runtimes_are_the_engine_s() -> None:
    from pipeline.classify.engine import RUNTIMES
    from pipeline.cli.options import Runtime
    from pipeline.settings import ClassifySettings

    assert tuple(r.value for r in Runtime) == RUNTIMES
    for command in ("eval", "quantize"):
        assert _defaults(command)["model"] == ClassifySettings().model
    assert _defaults("eval")["runtime"].value == ClassifySettings().runtime


@pytest.mark.parametrize("argv", [
    ["bench", "model", "--threads", "0"],
    ["bench", "model", "--seconds", "0"],
    ["bench", "model", "--runtime", "tensorrt"],
    ["bench", "arch", "--layout", "no-equals-sign"],
    ["bench", "pipeline", "--steps", "2,x"],
    ["bench", "scaling", "--set", "detect__threads"],
    ["analyze", "photo.jpg", "--fps", "0"],
    ["eval"],  # --data is required
    ["train", "--epochs", "many"],
])
def test_usage_errors_exit_2_with_a_message(argv: list[str]) -> None:
    run = run_cli(*argv)
    assert run.code == 2
    assert "Error" in run.stderr and "Traceback" not in run.stderr
