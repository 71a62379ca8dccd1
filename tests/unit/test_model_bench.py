"""`emotionpipe bench model` measures every runtime through the serving engine (a short real run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.classify.engine import WEIGHTS_DIR
from tests.support.cli import run_cli


def test_bench_model_reports_every_runtime_against_eager() -> None:
    # When the bench runs briefly on one model, one thread, one batch size
    argv = ["--model", "emonet-s", "--batch", "8", "--threads", "1", "--seconds", "0.2", "--warmup", "0", "--json"]
    run = run_cli("bench", "model", *argv)
    assert run.code == 0
    report = json.loads(run.stdout)
    # Then each runtime is measured on the engine it names, with its ratio to eager from the same run
    rows = {r["runtime"]: r for r in report["results"]}
    assert set(rows) == {"onnx-int8", "onnx", "torch"}
    assert all(r["faces"] == r["calls"] * 8 and r["faces_per_s"] > 0 for r in rows.values())
    assert rows["torch"]["vs_eager"] == 1.0
    assert rows["onnx-int8"]["vs_eager"] == pytest.approx(
        rows["onnx-int8"]["faces_per_s"] / rows["torch"]["faces_per_s"], abs=0.01
    )
    assert report["environment"]["cores"] >= 1


def test_bench_model_takes_weights_not_shipped(tmp_path: Path) -> None:
    # Given exported weights outside the shipped folder (a candidate before it ships), with card and int8 file
    for suffix in (".safetensors", ".json", ".int8.onnx"):
        shutil.copyfile(WEIGHTS_DIR / f"emonet-t{suffix}", tmp_path / f"candidate{suffix}")
    # When the bench is pointed at the file, then it measures that file's model
    argv = ["--model", str(tmp_path / "candidate.safetensors"), "--runtime", "onnx-int8", "--batch", "8",
            "--threads", "1", "--seconds", "0.2", "--warmup", "0", "--json"]
    run = run_cli("bench", "model", *argv)
    assert run.code == 0, run.stderr
    (row,) = json.loads(run.stdout)["results"]
    assert row["model"].endswith("candidate.safetensors") and row["faces_per_s"] > 0
    assert run_cli("bench", "model", "--model", str(tmp_path / "missing.safetensors"), "--seconds", "0.1").code == 1


def test_bench_arch_measures_candidates_against_the_shipped_layouts() -> None:
    # When a candidate layout is benched briefly
    argv = ["--layout", "tiny=8x1,16x1,32x1", "--batch", "8", "--seconds", "0.1", "--repeat", "1", "--json"]
    run = run_cli("bench", "arch", *argv)
    assert run.code == 0
    rows = {r["name"]: r for r in json.loads(run.stdout)["results"]}
    # Then it runs int8 beside the shipped emonet layouts of the same run, as a ratio to emonet-s,
    assert set(rows) == {"emonet-t", "emonet-s", "emonet-m", "tiny"}
    assert rows["emonet-s"]["vs_emonet_s"] == 1.0
    assert rows["tiny"]["vs_emonet_s"] == pytest.approx(
        rows["tiny"]["faces_per_s"] / rows["emonet-s"]["faces_per_s"], abs=0.01
    )
    # and compute follows the layout (a 3-stage net with 8-32 channels is far below emonet-t).
    assert rows["tiny"]["mmacs"] < rows["emonet-t"]["mmacs"] < rows["emonet-s"]["mmacs"] < rows["emonet-m"]["mmacs"]


def test_bench_arch_refuses_a_malformed_layout() -> None:
    run = run_cli("bench", "arch", "--layout", "bad=16by1", "--seconds", "0.1")
    assert run.code == 2 and "layout" in run.stderr
