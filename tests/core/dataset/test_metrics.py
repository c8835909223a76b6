import numpy as np
import pytest

from wbc_edge.core.dataset.metrics import (
    classification_metrics,
    confusion_matrix,
    flatten_numbers,
    kfold_summary,
    metrics_from_confusion,
)

CLASSES = ["A", "B", "C"]


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_metrics_match_hand_computed_values():
    m = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], CLASSES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    a, b, c = (m["per_class"][k] for k in CLASSES)
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert (b["precision"], b["recall"]) == (0.5, 1.0)
    assert (c["precision"], c["recall"]) == (1.0, pytest.approx(2 / 3))
    assert b["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert m["macro_avg"]["recall"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    weighted = (2 * a["f1"] + 1 * b["f1"] + 3 * c["f1"]) / 6
    assert m["weighted_avg"]["f1"] == pytest.approx(weighted)
    assert m["weighted_avg"]["recall"] == pytest.approx(m["accuracy"])  # always true


def test_never_predicted_or_absent_class_scores_zero_not_nan():
    m = metrics_from_confusion(np.array([[3, 0, 0], [1, 0, 0], [0, 0, 0]]), CLASSES)
    assert m["per_class"]["B"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["C"]["support"] == 0
    assert all(np.isfinite(v) for v in flatten_numbers(m).values())


def test_kfold_summary_is_mean_and_sample_sd_of_every_metric():
    folds = [
        classification_metrics([0, 1, 2, 2], [0, 1, 2, 2], CLASSES),
        classification_metrics([0, 1, 2, 2], [0, 1, 2, 0], CLASSES),
        classification_metrics([0, 1, 2, 2], [1, 1, 2, 0], CLASSES),
    ]
    s = kfold_summary(folds)
    acc = [1.0, 0.75, 0.5]
    assert s["mean"]["accuracy"] == pytest.approx(0.75)
    assert s["sd"]["accuracy"] == pytest.approx(np.std(acc, ddof=1)) == pytest.approx(0.25)
    for key in ("macro_avg.f1", "weighted_avg.precision", "per_class.C.recall"):
        vals = [flatten_numbers(f)[key] for f in folds]
        assert s["mean"][key] == pytest.approx(np.mean(vals))
        assert s["sd"][key] == pytest.approx(np.std(vals, ddof=1))
    assert "confusion_matrix" not in s["mean"]
