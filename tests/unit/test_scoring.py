"""Scoring an offline analysis against a labels CSV (`emotionpipe analyze --labels`), on plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.contracts import LABELS
from pipeline.detect.analyze import FaceAnalysis, FileAnalysis
from pipeline.detect.exceptions import LabelsError
from pipeline.detect.scoring import read_labels, score


def _face(label: str, p: float = 0.9) -> FaceAnalysis:
    rest = (1 - p) / 6
    probs = {name: (p if name == label else rest) for name in LABELS}
    return FaceAnalysis(frame_index=0, time_s=0.0, bbox=(0, 0, 10, 10), det_score=0.99, track_id=1, label=label,
                        probs=probs)


def _file(path: Path, *labels: str, error: str | None = None) -> FileAnalysis:
    return FileAnalysis(path=str(path), kind="video", model="m@1", faces=[_face(x) for x in labels], error=error)


def test_read_labels_defaults_to_the_first_label_column_and_skips_blanks(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("file,intended,crowd\na.mp4,Angry ,neutral\nb.mp4,,happy\nsub/c.mp4,sad,sad\n")
    labels = read_labels(csv)
    assert labels.source == f"{csv}:intended"
    assert labels.expected == {(tmp_path / "a.mp4").resolve(): "angry", (tmp_path / "sub/c.mp4").resolve(): "sad"}
    crowd = read_labels(csv, "crowd")
    assert crowd.expected[(tmp_path / "b.mp4").resolve()] == "happy"


@pytest.mark.parametrize(("text", "column", "message"), [
    ("name,label\na.mp4,happy\n", None, "'file' column"),
    ("file\na.mp4\n", None, "no label column"),
    ("file,label\na.mp4,happy\n", "crowd", "no column 'crowd'"),
    ("file,label\na.mp4,happy\nb.mp4,contempt\n", None, ":3: 'contempt' is not one of"),
    ("file,label\na.mp4,happy\na.mp4,sad\n", None, "listed twice"),
    ("", None, "'file' column"),
])
def test_read_labels_refuses_what_it_cannot_use(tmp_path: Path, text: str, column: str | None, message: str) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(text)
    with pytest.raises(LabelsError, match=message):
        read_labels(csv, column)


def test_read_labels_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="cannot read labels"):
        read_labels(tmp_path / "nope.csv")


def test_score_counts_faces_and_dominant_labels_per_expected_emotion(tmp_path: Path) -> None:
    # Given labels for four clips and an analysis of three of them plus one unlabelled clip
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nang.mp4,angry\nang2.mp4,angry\nhap.mp4,happy\nsad.mp4,sad\nbad.mp4,fear\n")
    results = [
        _file(tmp_path / "ang.mp4", "angry", "angry", "sad"),  # dominant angry, 2 of 3 faces right
        _file(tmp_path / "ang2.mp4", "sad", "sad", "angry"),  # dominant sad, 1 of 3 right
        _file(tmp_path / "hap.mp4"),  # no face found: a file that counts and is never right
        _file(tmp_path / "bad.mp4", error="cannot open video"),
        _file(tmp_path / "other.mp4", "happy"),
    ]
    scored = score(results, read_labels(csv))
    # Then each expected emotion gets its files and faces, in label order
    assert list(scored.by_class) == ["angry", "happy"]
    angry, happy = scored.by_class["angry"], scored.by_class["happy"]
    assert (angry.files, angry.files_right, angry.faces, angry.faces_right) == (2, 1, 6, 3)
    assert angry.face_recall == pytest.approx(0.5) and angry.file_recall == pytest.approx(0.5)
    assert (happy.files, happy.files_right, happy.files_without_face, happy.faces) == (1, 0, 1, 0)
    assert happy.face_recall is None
    # the total adds them up, the macro recall only averages classes that had faces,
    assert (scored.total.files, scored.total.files_right, scored.total.faces) == (3, 1, 6)
    assert scored.macro_face_recall == pytest.approx(0.5)
    # and what could not be scored is named, not dropped silently.
    assert scored.unlabelled == (str(tmp_path / "other.mp4"),)
    assert scored.not_analysed == tuple(sorted(str((tmp_path / f).resolve()) for f in ("bad.mp4", "sad.mp4")))
    report = scored.format()
    assert "files right 1/3" in report and "not scored (no label)" in report and "sad.mp4" in report
    assert scored.as_dict()["by_class"]["angry"]["face_recall"] == 0.5
