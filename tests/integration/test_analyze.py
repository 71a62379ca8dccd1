"""``emotionpipe analyze`` on real media with the real detector and the shipped classifiers.

No Ray, no Redis: the command runs the pipeline's detect/align/crop code and
the ONNX classifier on files, so these tests cover the whole offline path on
real CREMA-D footage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.contracts import LABELS
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

HAPPY_CLIP = "video/cremad/1001_DFA_HAP_XX.mp4"
NO_FACE_CLIP = "video/no_face.mp4"


def _run_json(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    run = run_cli("analyze", *argv, "--json")
    return run.code, json.loads(run.stdout)


@pytest.mark.parametrize("model", ["emonet-m", "emonet-s", "emonet-t"])
def test_happy_clip_is_dominantly_happy(shared_media: Path, model: str) -> None:
    # Given the CREMA-D clip an actor performs as happy (and the crowd rated happy)
    # When it is analysed with each shipped model
    rc, files = _run_json(str(shared_media / HAPPY_CLIP), "--model", model)
    # Then one face is tracked through the clip and the dominant emotion is happy
    assert rc == 0
    (clip,) = files
    assert clip["error"] is None and clip["kind"] == "video"
    assert clip["frames_analyzed"] >= 4
    assert len(clip["faces"]) >= clip["frames_analyzed"] - 1
    assert {f["track_id"] for f in clip["faces"]} == {1}
    assert clip["model"] == f"{model}@1"
    assert clip["dominant"] == "happy"


def test_no_face_clip_has_no_faces(shared_media: Path) -> None:
    # Given a video with no people in it
    rc, files = _run_json(str(shared_media / NO_FACE_CLIP))
    # Then frames are read but nothing is detected, and there is no dominant emotion
    assert rc == 0
    (clip,) = files
    assert clip["error"] is None
    assert clip["frames_analyzed"] > 0
    assert clip["faces"] == []
    assert clip["dominant"] is None


def test_json_schema_shape(shared_media: Path) -> None:
    # Given a photo, a multi-face photo and a video in one call
    paths = [shared_media / "images" / "0-f15-hao-ph.jpg", shared_media / "images" / "multi_face.jpg",
             shared_media / HAPPY_CLIP]
    rc, files = _run_json(*map(str, paths), "--max-frames", "2")
    # Then the output is a list with one object per file, in input order
    assert rc == 0
    assert [f["path"] for f in files] == [str(p) for p in paths]
    for f in files:
        assert set(f) >= {"path", "kind", "model", "width", "height", "fps", "frames_analyzed", "faces", "error",
                          "dominant", "mean_probs", "label_counts"}
        assert f["kind"] in {"image", "video"}
        assert f["width"] > 0 and f["height"] > 0
        for face in f["faces"]:
            # each face: bbox (x, y, w, h) in frame pixels, a label and a probability per label
            assert set(face) >= {"frame_index", "time_s", "bbox", "det_score", "track_id", "label", "probs"}
            x, y, w, h = face["bbox"]
            assert all(isinstance(v, int) for v in face["bbox"]) and w > 0 and h > 0
            assert 0 <= x < f["width"] and 0 <= y < f["height"]
            assert list(face["probs"]) == list(LABELS)
            assert sum(face["probs"].values()) == pytest.approx(1.0, abs=1e-3)
            assert face["label"] == max(face["probs"], key=face["probs"].get)
    assert files[0]["kind"] == "image" and len(files[0]["faces"]) == 1
    assert len(files[1]["faces"]) >= 4
    assert files[2]["kind"] == "video" and files[2]["frames_analyzed"] == 2


def test_human_output_and_unreadable_file(shared_media: Path, tmp_path: Path) -> None:
    # Given one good photo and one file that is not an image
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    run = run_cli("analyze", str(shared_media / "images" / "0-f1-su-ph.jpg"), str(bad))
    rc, out = run.code, run.stdout
    # Then the good file is reported with bbox, label and probability, the bad one with its error,
    # and the exit status says something could not be read
    assert rc == 1
    assert "face at x=" in out and "surprise" in out
    assert "error: cannot read image" in out


def test_unknown_model_is_a_clear_error(shared_media: Path) -> None:
    run = run_cli("analyze", str(shared_media / "images" / "0-f1-su-ph.jpg"), "--model", "emonet-xl")
    assert run.code == 2
    assert "emonet-xl" in run.stderr


def test_labels_score_the_analysis(shared_media: Path, tmp_path: Path) -> None:
    # Given two CREMA-D clips and the labels file beside them (intended label and crowd vote)
    cremad = shared_media / "video" / "cremad"
    clips = [cremad / "1001_DFA_HAP_XX.mp4", cremad / "1001_DFA_NEU_XX.mp4"]
    run = run_cli("analyze", *map(str, clips), "--labels", str(cremad / "labels.csv"),
                  "--label-column", "face_only_crowd_vote", "--json")
    assert run.code == 0
    out = json.loads(run.stdout)
    files, scored = out["files"], out["score"]
    # Then the score counts exactly the faces and dominant labels the analysis reports, per expected emotion,
    assert scored["labels"].endswith("labels.csv:face_only_crowd_vote")
    assert list(scored["by_class"]) == ["happy", "neutral"]
    for clip, expected in zip(files, ["happy", "neutral"], strict=True):
        row = scored["by_class"][expected]
        assert row["files"] == 1 and row["faces"] == len(clip["faces"]) > 0
        assert row["faces_right"] == sum(face["label"] == expected for face in clip["faces"])
        assert row["files_right"] == int(clip["dominant"] == expected)
    assert scored["total"]["faces"] == sum(len(clip["faces"]) for clip in files)
    # and names the four labelled clips it was not given.
    assert len(scored["not_analysed"]) == 4 and scored["unlabelled"] == []

    # The human report ends with the table; a broken labels file is a usage error before any analysis.
    human = run_cli("analyze", str(clips[0]), "--labels", str(cremad / "labels.csv"), "--max-frames", "2")
    assert human.code == 0 and "scored against" in human.stdout and "macro face recall" in human.stdout
    bad = tmp_path / "labels.csv"
    bad.write_text("file,label\n1001_DFA_HAP_XX.mp4,joy\n")
    refused = run_cli("analyze", str(clips[0]), "--labels", str(bad))
    assert refused.code == 2 and "'joy' is not one of" in refused.stderr
    assert run_cli("analyze", str(clips[0]), "--label-column", "intended").code == 2
