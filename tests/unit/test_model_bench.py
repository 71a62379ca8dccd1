"""`emotionpipe bench model` measures every runtime through the serving engine (a short real run)."""

from __future__ import annotations

import json

import pytest

from pipeline.bench.model_bench import main as bench_main


def test_bench_model_reports_every_runtime_against_eager(capsys: pytest.CaptureFixture[str]) -> None:
    # When the bench runs briefly on one model, one thread, one batch size
    argv = ["--model", "emonet-s", "--batch", "8", "--threads", "1", "--seconds", "0.2", "--warmup", "0", "--json"]
    assert bench_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # Then each runtime is measured on the engine it names, with its ratio to eager from the same run
    rows = {r["runtime"]: r for r in report["results"]}
    assert set(rows) == {"onnx-int8", "onnx", "torch"}
    assert all(r["faces"] == r["calls"] * 8 and r["faces_per_s"] > 0 for r in rows.values())
    assert rows["torch"]["vs_eager"] == 1.0
    assert rows["onnx-int8"]["vs_eager"] == pytest.approx(
        rows["onnx-int8"]["faces_per_s"] / rows["torch"]["faces_per_s"], abs=0.01
    )
    assert report["environment"]["cores"] >= 1
