"""Parent against child: accuracy, recall per class, the differential error, and the verdict.

The differential error is what a lab reads wrong: 300-cell smears at the mixes of
`train.smears.MIXES` drawn from the held-out cells, each class's reported share minus its true
share, as the mean absolute error in percentage points over the smears and mixes
(`train.smears.smear_errors`). `raw` counts each cell's label; `corrected` applies a confusion
matrix (`core.label_shift`), given only for a model that ships one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wbc_edge.train.out_of_fold import HeldOut
from wbc_edge.train.smears import smear_errors

SMEARS = 100  # per mix
ACCURACY_TOLERANCE = 0.02  # the child may lose at most this much accuracy on the original cells
RECALL_TOLERANCE = 0.05  # and at most this much recall of any one class


def scores(
    classes: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    groups: list[str],
    confusion: np.ndarray | None = None,
    smears: int = SMEARS,
) -> dict[str, Any]:
    """Accuracy, recall per class and the differential error (raw, and corrected when a
    confusion matrix is given) of `probs` on labelled cells grouped by source cell."""
    held = HeldOut(list(classes), [""] * len(labels), np.asarray(labels), list(groups), probs)
    pred = held.predicted
    right = pred == held.labels
    recall = {c: _mean(right[held.labels == k]) for k, c in enumerate(classes)}
    out: dict[str, Any] = {
        "cells": len(labels),
        "accuracy": round(float(right.mean()), 4) if len(labels) else None,
        "recall": recall,
    }
    errors = smear_errors(held, confusion, smears=smears)
    for way in ("raw", "corrected"):
        per_mix = [errors[m][way] for m in errors if way in errors[m]]
        if not per_mix:
            continue
        mae = {c: round(float(np.mean([np.abs(m[c]).mean() for m in per_mix])), 2) for c in classes}
        out[f"differential_error_{way}"] = mae
        out[f"differential_error_{way}_mean"] = round(float(np.mean(list(mae.values()))), 2)
    return out


def reported_error(s: dict[str, Any]) -> float:
    """The differential error of what the model's user reads (corrected when it ships a count
    model, else raw), averaged over the classes."""
    return s.get("differential_error_corrected_mean", s["differential_error_raw_mean"])


@dataclass
class Verdict:
    wins: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"wins": self.wins, "reasons": self.reasons}


def verdict(
    lab_parent: dict[str, Any],
    lab_child: dict[str, Any],
    orig_parent: dict[str, Any] | None,
    orig_child: dict[str, Any] | None,
    accuracy_tolerance: float = ACCURACY_TOLERANCE,
    recall_tolerance: float = RECALL_TOLERANCE,
) -> Verdict:
    """The child wins when, on the lab's held-out cells, it is more accurate and its
    differential error is no larger than the parent's as shipped, and on the original held-out
    cells it loses no more than the tolerances (no forgetting)."""
    reasons: list[str] = []
    ok = True
    pa, ca = lab_parent["accuracy"], lab_child["accuracy"]
    if ca <= pa:
        ok = False
        reasons.append(f"lab held-out accuracy {ca:.3f} is not above the parent's {pa:.3f}")
    else:
        reasons.append(f"lab held-out accuracy {pa:.3f} -> {ca:.3f}")
    pe, ce = reported_error(lab_parent), reported_error(lab_child)
    if ce > pe:
        ok = False
        reasons.append(f"lab differential error {ce:.2f} pp is above the parent's {pe:.2f} pp")
    else:
        reasons.append(f"lab differential error {pe:.2f} -> {ce:.2f} pp")
    if orig_parent is None or orig_child is None:
        return Verdict(False, [*reasons, "no original held-out cells to check forgetting on"])
    drop = orig_parent["accuracy"] - orig_child["accuracy"]
    if drop > accuracy_tolerance:
        ok = False
        reasons.append(
            f"forgets: original held-out accuracy falls {drop:.3f} (tolerance "
            f"{accuracy_tolerance:g})"
        )
    else:
        reasons.append(
            f"original held-out accuracy {orig_parent['accuracy']:.3f} -> "
            f"{orig_child['accuracy']:.3f} (tolerance {accuracy_tolerance:g})"
        )
    for c, before in orig_parent["recall"].items():
        after = orig_child["recall"][c]
        if before is not None and after is not None and before - after > recall_tolerance:
            ok = False
            reasons.append(
                f"forgets {c}: original recall {before:.3f} -> {after:.3f} (tolerance "
                f"{recall_tolerance:g})"
            )
    return Verdict(ok, reasons)


def _mean(v: np.ndarray) -> float | None:
    return round(float(v.mean()), 4) if len(v) else None
