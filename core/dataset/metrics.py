"""Classification metrics in numpy: confusion matrix, per-class precision/recall/F1, averages,
and the mean ± sd of every metric over K folds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n) counts; row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def metrics_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages.

    A class never predicted has precision 0, one absent has recall 0 (and weight 0 in the
    weighted average), as scikit-learn does with zero_division=0.
    """
    cm = np.asarray(cm, np.float64)
    support = cm.sum(axis=1)
    precision, recall, f1 = per_class(cm)
    total = cm.sum()
    classes_out = {
        c: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }
    weights = support / total if total else np.zeros_like(support)
    return {
        "accuracy": accuracy(cm),
        "n": int(total),
        "per_class": classes_out,
        "macro_avg": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "weighted_avg": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1": float((f1 * weights).sum()),
        },
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class of a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    precision = _div(tp, cm.sum(axis=0))
    recall = _div(tp, cm.sum(axis=1))
    return precision, recall, _div(2 * precision * recall, precision + recall)


def accuracy(cm: np.ndarray) -> float:
    """Share of the confusion matrix on its diagonal (0 for an empty one)."""
    total = np.asarray(cm).sum()
    return float(np.trace(cm) / total) if total else 0.0


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """`metrics_from_confusion` of the predictions."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, len(classes)), classes)


def flatten_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{'macro_avg': {'f1': .9}} → {'macro_avg.f1': .9}; lists (the confusion matrix) skipped."""
    out: dict[str, float] = {}
    for key, v in values.items():
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out.update(flatten_numbers(v, name + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
    return out


def kfold_summary(fold_metrics: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1) of every numeric metric over the folds.

    Returns {"mean": {"accuracy": …, "macro_avg.f1": …}, "sd": {…}, "k": K}-like dicts keyed by
    the flattened metric name; a metric missing from some fold is averaged over the others.
    """
    flat = [flatten_numbers(m) for m in fold_metrics]
    names = sorted({k for f in flat for k in f})
    mean: dict[str, float] = {}
    sd: dict[str, float] = {}
    for name in names:
        vals = np.array([f[name] for f in flat if name in f], np.float64)
        mean[name] = float(vals.mean())
        sd[name] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "sd": sd}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)
