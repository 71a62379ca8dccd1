"""Classification metrics without scikit-learn (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.contracts import LABELS


@dataclass(frozen=True)
class Report:
    """Accuracy, macro-F1, per-class recall and the confusion matrix (rows = truth)."""

    accuracy: float
    macro_f1: float
    recall: dict[str, float]
    precision: dict[str, float]
    confusion: list[list[int]]
    n: int

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "recall": self.recall,
            "precision": self.precision,
            "confusion": self.confusion,
            "labels": list(LABELS),
        }

    def format(self) -> str:
        lines = [f"faces: {self.n}   accuracy: {self.accuracy:.4f}   macro-F1: {self.macro_f1:.4f}", ""]
        lines.append(f"{'class':<10}{'recall':>8}{'prec.':>8}")
        for label in LABELS:
            lines.append(f"{label:<10}{self.recall[label]:>8.3f}{self.precision[label]:>8.3f}")
        lines += ["", "confusion (rows = truth, columns = predicted)", " " * 10 + "".join(f"{l[:7]:>8}" for l in LABELS)]
        for label, row in zip(LABELS, self.confusion):
            lines.append(f"{label:<10}" + "".join(f"{v:>8}" for v in row))
        return "\n".join(lines)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> Report:
    """Compute the report for integer labels in :data:`LABELS` order."""
    k = len(LABELS)
    cm = np.bincount(y_true.astype(np.int64) * k + y_pred.astype(np.int64), minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(cm.sum())
    return Report(
        accuracy=float(tp.sum() / max(n, 1)),
        macro_f1=float(f1.mean()),
        recall={label: float(r) for label, r in zip(LABELS, recall)},
        precision={label: float(p) for label, p in zip(LABELS, precision)},
        confusion=cm.tolist(),
        n=n,
    )
