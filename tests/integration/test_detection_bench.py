"""`emotionpipe bench detection`'s comparison on real clips and the real detector (not its figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("retinaface")

from pipeline.bench.detection_bench import DetectionBenchOptions, run_detection_bench  # noqa: E402
from pipeline.classify.engine import EmotionEngine  # noqa: E402
from pipeline.settings import ClassifySettings, DetectSettings  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402

pytestmark = pytest.mark.integration


def test_schedule_finds_what_every_frame_detection_finds(shared_media: Path) -> None:
    happy = shared_media / "video" / "cremad" / "1001_DFA_HAP_XX.mp4"
    # Given a face clip and an empty one, each played three times at 5 fps
    opts = DetectionBenchOptions(clips=(happy, shared_media / "video" / "no_face.mp4"), expression_clips=(happy,),
                                 loops=3)
    # When both schedules run over them
    report = run_detection_bench(opts, DetectSettings(), EmotionEngine.load(ClassifySettings()), progress=lambda _m: None)
    face, empty = report["clips"]
    # Then every-frame detection sees the face throughout and the schedule keeps it with the same labels,
    # mostly from tracked regions rather than full scans,
    assert face["frames"] >= 20 and face["face_frames"] == face["frames"]
    assert face["face_frame_recall"] >= 0.95 and face["same_label"] >= 0.9, face
    assert face["scans"].get("regions", 0) > face["scans"].get("full", 0), face["scans"]
    # the empty clip gives no tracks either way, and the degraded run still finds the face.
    assert empty["face_frames"] == 0 and empty["tracks_full"] == empty["tracks_scheduled"] == 0
    (degraded,) = report["degraded"]["clips"]
    assert degraded["recall_full"] >= 0.9 and degraded["recall_scheduled"] >= 0.9, degraded
    assert json.dumps(report)  # the --json output


def test_cli_refuses_a_missing_clip_and_bad_options(tmp_path: Path) -> None:
    run = run_cli("bench", "detection", "--video", str(tmp_path / "nope.mp4"))
    assert run.code == 2 and "no such clip" in run.stderr
    assert run_cli("bench", "detection", "--loops", "0").code == 2
