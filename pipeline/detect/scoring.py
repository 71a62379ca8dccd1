"""Score an offline analysis against a labels file: per-class recall over faces and over files.

A labels CSV has a header row, a ``file`` column naming files relative to the CSV's own folder
and a column with each file's expected emotion (an empty cell leaves the file unlabelled), e.g.
the CREMA-D clips' ``intended`` label and ``face_only_crowd_vote``. ``emotionpipe analyze
--labels`` prints the score after the analysis, so a labelled folder of clips or photos is an
evaluation set for the whole offline path (detection, alignment, classification).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from pathlib import Path

from pipeline.contracts import LABELS
from pipeline.detect.analyze import FileAnalysis, summarize
from pipeline.detect.exceptions import LabelsError

__all__ = ["ClassScore", "LabelledScore", "Labels", "read_labels", "score"]


@dataclass(frozen=True, slots=True)
class Labels:
    """The expected emotion of each labelled file (resolved paths)."""

    source: str  # "<csv>:<column>", for the report
    expected: dict[Path, str]


def read_labels(path: str | Path, column: str | None = None) -> Labels:
    """Read a labels CSV; ``column`` defaults to the first column after ``file``.

    Raises:
        LabelsError: unreadable file, no ``file`` column, unknown column, unknown emotion,
            or a file listed twice.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = list(rows[0]) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"cannot read labels {path}: {exc}") from None
    if "file" not in header:
        raise LabelsError(f"{path}: needs a header row with a 'file' column (found: {', '.join(header) or 'nothing'})")
    others = [name for name in header if name != "file"]
    if column is None:
        if not others:
            raise LabelsError(f"{path}: no label column besides 'file'")
        column = others[0]
    elif column not in others:
        raise LabelsError(f"{path}: no column {column!r} (columns: {', '.join(others)})")
    expected: dict[Path, str] = {}
    for line, row in enumerate(rows, start=2):
        label = (row[column] or "").strip().lower()
        if not label:
            continue
        if label not in LABELS:
            raise LabelsError(f"{path}:{line}: {label!r} is not one of {', '.join(LABELS)}")
        file = (path.parent / (row["file"] or "").strip()).resolve()
        if file in expected:
            raise LabelsError(f"{path}:{line}: {row['file']} is listed twice")
        expected[file] = label
    return Labels(source=f"{path}:{column}", expected=expected)


@dataclass(frozen=True, slots=True)
class ClassScore:
    """Counts for one expected emotion (or all of them)."""

    files: int = 0
    files_right: int = 0  # the file's dominant emotion is the expected one
    files_without_face: int = 0  # counted in ``files``, never right
    faces: int = 0
    faces_right: int = 0

    def __add__(self, other: ClassScore) -> ClassScore:
        return ClassScore(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def face_recall(self) -> float | None:
        return self.faces_right / self.faces if self.faces else None

    @property
    def file_recall(self) -> float | None:
        return self.files_right / self.files if self.files else None

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "files_right": self.files_right, "files_without_face": self.files_without_face,
                "faces": self.faces, "faces_right": self.faces_right,
                "face_recall": _round(self.face_recall), "file_recall": _round(self.file_recall)}


@dataclass(frozen=True)
class LabelledScore:
    """How an analysis agrees with a labels file."""

    source: str
    by_class: dict[str, ClassScore]  # expected emotions present, in LABELS order
    unlabelled: tuple[str, ...] = ()  # analysed files the labels do not name (or leave empty)
    not_analysed: tuple[str, ...] = ()  # labelled files missing from the analysis or unreadable
    total: ClassScore = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.by_class.values(), ClassScore()))

    @property
    def macro_face_recall(self) -> float | None:
        """Mean of the per-class face recalls, so a long clip of one class does not dominate."""
        recalls = [c.face_recall for c in self.by_class.values() if c.face_recall is not None]
        return sum(recalls) / len(recalls) if recalls else None

    def as_dict(self) -> dict[str, object]:
        return {"labels": self.source, "by_class": {k: v.as_dict() for k, v in self.by_class.items()},
                "total": self.total.as_dict(), "macro_face_recall": _round(self.macro_face_recall),
                "unlabelled": list(self.unlabelled), "not_analysed": list(self.not_analysed)}

    def format(self) -> str:
        lines = [f"scored against {self.source}: {self.total.files} labelled files analysed",
                 (f"  {'expected':<9} {'files':>5} {'right':>5} {'no face':>7} {'faces':>6} {'right':>6} "
                 f"{'face recall':>11}")]
        for name, c in [*self.by_class.items(), ("all", self.total)]:
            recall = f"{c.face_recall:.3f}" if c.face_recall is not None else "-"
            lines.append(f"  {name:<9} {c.files:>5} {c.files_right:>5} {c.files_without_face:>7} {c.faces:>6} "
                         f"{c.faces_right:>6} {recall:>11}")
        if self.macro_face_recall is not None:
            lines.append(f"  macro face recall {self.macro_face_recall:.3f}; "
                         f"files right {self.total.files_right}/{self.total.files}")
        if self.unlabelled:
            lines.append(f"  not scored (no label): {', '.join(self.unlabelled)}")
        if self.not_analysed:
            lines.append(f"  labelled but not analysed: {', '.join(self.not_analysed)}")
        return "\n".join(lines)


def score(results: Iterable[FileAnalysis], labels: Labels) -> LabelledScore:
    """Per expected emotion: faces labelled as expected, and files whose dominant emotion is it."""
    counts: dict[str, ClassScore] = {}
    unlabelled: list[str] = []
    seen: set[Path] = set()
    for result in results:
        file = Path(result.path).resolve()
        expected = labels.expected.get(file)
        if expected is None:
            unlabelled.append(result.path)
            continue
        if result.error:
            continue  # listed under not_analysed
        seen.add(file)
        summary = summarize(result)
        counts[expected] = counts.get(expected, ClassScore()) + ClassScore(
            files=1,
            files_right=int(summary.dominant == expected),
            files_without_face=int(not result.faces),
            faces=len(result.faces),
            faces_right=sum(face.label == expected for face in result.faces),
        )
    missing = sorted(str(p) for p in labels.expected if p not in seen)
    return LabelledScore(
        source=labels.source,
        by_class={name: counts[name] for name in LABELS if name in counts},
        unlabelled=tuple(unlabelled),
        not_analysed=tuple(missing),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
