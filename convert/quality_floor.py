"""The absolute quality floor: is the float model clearly better than chance at all?

Parity is relative (an artifact against the float model), so a model that calls every cell
NEUTROPHIL passes it. The floor is measured on the float model on the parity set: accuracy at
least `margin` above chance (the share of the commonest class, the accuracy of always guessing
it) and every class present in the set recalled at least `min_recall`. Falling below it is a
loud warning in wbc-convert and is recorded in bundle.json's `quality` entry, which the edge
app reads when it loads the bundle (`edge_app.model_quality`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wbc_edge.convert.parity import scores


@dataclass(frozen=True)
class QualityFloor:
    """Accuracy >= chance + margin, and recall >= min_recall for every class in the set."""

    margin: float = 0.2
    min_recall: float = 0.3


def quality_record(
    labels: np.ndarray,
    float_pred: np.ndarray,
    classes: list[str],
    measured_on: str,
    created: str,
    held_out: bool = True,
    floor: QualityFloor | None = None,
) -> dict[str, Any]:
    """The bundle's `quality` entry: flat numbers, strings and bools. `held_out`: the set was
    checked against the training images (else the figures may flatter the model)."""
    floor = floor or QualityFloor()
    n_classes = len(classes)
    s = scores(labels, float_pred, n_classes)
    support = np.bincount(labels, minlength=n_classes)
    chance = float(support.max() / max(len(labels), 1)) if len(labels) else 1.0
    chance = max(chance, 1.0 / n_classes)
    present = [i for i in range(n_classes) if support[i] > 0]
    worst = min(present, key=lambda i: s.recall[i]) if present else 0
    min_accuracy = min(chance + floor.margin, 1.0)
    reasons = []
    if s.accuracy < min_accuracy:
        reasons.append(
            f"accuracy {s.accuracy:.3f} < {min_accuracy:.3f} (chance {chance:.3f} + "
            f"{floor.margin:g})"
        )
    low = [classes[i] for i in present if s.recall[i] < floor.min_recall]
    if low:
        reasons.append(f"recall below {floor.min_recall:g} for {', '.join(low)}")
    return {
        "measured_on": measured_on,
        "held_out_checked": held_out,
        "images": len(labels),
        "accuracy": round(s.accuracy, 6),
        "chance": round(chance, 6),
        "min_accuracy": round(min_accuracy, 6),
        "worst_class": classes[worst],
        "worst_recall": round(float(s.recall[worst]), 6),
        "min_recall": floor.min_recall,
        "passed": not reasons,
        "reason": "; ".join(reasons),
        "created": created,
    }
