"""Classification metrics from labels and predictions: what the report shows (scikit-learn's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion", "classification_report"]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predictions."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (JSON-ready),
    all scikit-learn's (``zero_division=0``: a class never predicted has precision 0, not NaN).
    Macro-F1 averages over the classes that occur in the labels or the predictions, as
    scikit-learn's ``f1_score(average="macro")`` does: a class predicted but absent counts as 0.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    matrix = confusion(y_true, y_pred, len(classes))
    total = int(matrix.sum())
    everyone = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=everyone,
                                                                     zero_division=0) if total else ([0.0] * len(classes),) * 4
    return {
        "n": total,
        "accuracy": float(accuracy_score(y_true, y_pred)) if total else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)) if total else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion": matrix.tolist(),
    }
