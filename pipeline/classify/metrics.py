"""Classification metrics without scikit-learn (numpy only)."""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class PairedComparison:
    """Two models' top-1 labels on the same faces: is their accuracy difference more than noise?

    Models that share training data and teachers err on mostly the same faces, so what decides is
    the faces where exactly one of them is right (``only_a``, ``only_b``), not the two accuracies'
    own standard errors, which would overstate the noise several times.
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # faces A labels right and B wrong
    only_b: int
    std_error: float  # paired standard error of accuracy_a - accuracy_b
    p_value: float  # McNemar's exact test, two-sided: chance of a split this uneven if both were equal

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
                "difference": self.difference, "only_a": self.only_a, "only_b": self.only_b,
                "std_error": self.std_error, "p_value": self.p_value}


def compare_paired(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> PairedComparison:
    """Compare two models' integer labels for the same faces (McNemar, paired standard error)."""
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError(f"labels for {len(y_true)}, {len(pred_a)} and {len(pred_b)} faces: compare the same faces")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    n = len(y_true)
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    discordant = only_a + only_b
    # var of d_i = right_a_i - right_b_i, each in {-1, 0, 1}, over n faces
    var = discordant / n - ((only_a - only_b) / n) ** 2 if n else 0.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))
    return PairedComparison(
        n=n,
        accuracy_a=float(right_a.mean()) if n else 0.0,
        accuracy_b=float(right_b.mean()) if n else 0.0,
        only_a=only_a,
        only_b=only_b,
        std_error=math.sqrt(max(var, 0.0) / n) if n else 0.0,
        p_value=min(1.0, 2 * tail / 2**discordant),
    )
