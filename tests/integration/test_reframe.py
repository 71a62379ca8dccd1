"""FER2013 faces through the live detector must classify like the dataset's own crops.

Real RetinaFace, the pipeline's alignment and the shipped int8 classifier on the
first 1,000 validation faces, each upscaled 4x into a frame (``emotionpipe eval
--through-detector``). A framing, alignment or resampling change that makes camera
crops differ from FER2013's shows up as lost accuracy or label agreement here.
Measured by moving the canonical landmark positions: a 6 px shift of the crop or a
30 % zoom fails it; 3 px with 12 % zoom does not, since the classifier was trained
with +-10 % translation and 0.85-1.15 scale and tolerates that much.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.engine import EmotionEngine
from pipeline.detect.detector import DetectionStage
from pipeline.settings import ClassifySettings, DetectSettings
from pipeline.train.reframe import evaluate_reframed
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FER2013 = Path(os.environ.get("EP_FER2013", REPO.parent / "shared" / "data" / "fer2013.npz"))
N_FACES = 1000


@pytest.fixture(scope="module")
def fer_val() -> tuple[np.ndarray, np.ndarray]:
    if not FER2013.exists():
        pytest.skip(f"FER2013 not found at {FER2013}")
    with np.load(FER2013) as data:
        return data["x_val"][:N_FACES], data["y_val"][:N_FACES]


@pytest.fixture(scope="module")
def engine() -> EmotionEngine:
    return EmotionEngine.load(ClassifySettings())


@pytest.fixture(scope="module")
def detector() -> DetectionStage:
    return DetectionStage(DetectSettings())


def test_upright_faces_classify_like_the_dataset(engine: EmotionEngine, detector: DetectionStage,
                                                 fer_val: tuple[np.ndarray, np.ndarray]) -> None:
    # when: every face goes through detection, alignment and the 48x48 crop
    r = evaluate_reframed(engine, detector, *fer_val, 0.0)
    # then: nearly all are found, and their crops lose little against the originals
    assert r.found / r.total >= 0.95
    assert r.report.accuracy >= r.direct_accuracy - 0.03, r.format()
    assert r.agreement >= 0.80, r.format()


def test_alignment_undoes_head_tilt(engine: EmotionEngine, detector: DetectionStage,
                                    fer_val: tuple[np.ndarray, np.ndarray]) -> None:
    # when: the frames are rotated 30 degrees
    r = evaluate_reframed(engine, detector, *fer_val, 30.0)
    # then: the aligned crops classify far better than the rotated faces do unaligned
    assert r.rotated_accuracy is not None
    assert r.found / r.total >= 0.85
    assert r.report.accuracy >= r.rotated_accuracy + 0.03, r.format()


def test_cli_json_reports_both_paths(fer_val: tuple[np.ndarray, np.ndarray]) -> None:
    # when
    run = run_cli("eval", "--data", str(FER2013), "--through-detector", "--rotate", "10", "--limit", "40", "--json")
    # then
    out = json.loads(run.stdout)
    assert run.code == 0
    assert out["through_detector"] is True and out["rotate_deg"] == 10.0 and out["faces"] == 40
    assert 0 < out["found"] <= 40 and out["n"] == out["found"]
    for key in ("accuracy", "macro_f1", "direct_accuracy", "agreement", "rotated_unaligned_accuracy"):
        assert 0.0 <= out[key] <= 1.0
    # per class, through the detector and on the original crops of the same faces
    assert set(out["direct_recall"]) == set(out["recall"]) == set(out["labels"])


def test_rotate_without_detector_is_a_usage_error() -> None:
    run = run_cli("eval", "--data", str(FER2013), "--rotate", "15")
    assert run.code == 2
    assert "--rotate needs --through-detector" in run.stderr
