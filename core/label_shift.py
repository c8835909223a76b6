"""The differential corrected for the classifier's known confusions, with a 95 % interval.

Counting each cell's label (classify-and-count) is biased whenever a smear's mix differs from
what the classifier's errors were balanced on: 5 % of neutrophils read as eosinophils is 3
points of a normal smear's 60 % neutrophils, doubling its 3 % eosinophils. The bundle stores
the out-of-fold confusion matrix of its recipe (rows: true class, columns: predicted, in
source cells it never saw: a cell's copies share its one count). Given a run's predicted
labels, the class shares are estimated as the mix that best explains them:

    predicted counts n_j ~ Multinomial(N, sum_i pi_i * C[i, j]),  C = P(predicted j | true i)

`estimate_shares` finds the maximum-likelihood pi by EM (each step keeps pi a distribution,
so no share is negative and they sum to 1; Saerens et al. 2002, on hard labels). It assumes
no mix: abnormal smears come out as they are. `corrected_differential` adds a percentile
bootstrap interval that resamples both the run's cells and the confusion matrix's own cells,
so the interval covers the sampling of the smear and the uncertainty of the correction.
Below `MIN_CELLS` cells only the raw count is given, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Realistic smears, percent of white cells (basophils, under 1 %, are not among the classes).
# Adult reference intervals: neutrophils 40-75 %, lymphocytes 20-45 %, monocytes 2-10 %,
# eosinophils 1-6 % (Bain, *Blood Cells: A Practical Guide*, 5th ed., 2015); each abnormal
# mix raises one class well past its interval at the others' expense.
MIXES: dict[str, dict[str, float]] = {
    "normal": {"NEUTROPHIL": 60, "LYMPHOCYTE": 30, "MONOCYTE": 7, "EOSINOPHIL": 3},
    "neutrophilia": {"NEUTROPHIL": 85, "LYMPHOCYTE": 10, "MONOCYTE": 4, "EOSINOPHIL": 1},
    "lymphocytosis": {"NEUTROPHIL": 30, "LYMPHOCYTE": 60, "MONOCYTE": 7, "EOSINOPHIL": 3},
    "eosinophilia": {"NEUTROPHIL": 50, "LYMPHOCYTE": 25, "MONOCYTE": 7, "EOSINOPHIL": 18},
    "monocytosis": {"NEUTROPHIL": 52, "LYMPHOCYTE": 27, "MONOCYTE": 18, "EOSINOPHIL": 3},
}
MIN_CELLS = 50  # fewer counted cells: the raw count only (the correction would be noise)
BOOTSTRAP = 1000
PRIOR = 0.05  # cells added to every entry: a confusion never seen is rare, not impossible
_ITERATIONS = 500
_TOL = 1e-9


def expected_shares(
    mix: dict[str, float],
    classes: list[str],
    confusion: np.ndarray,
    correct_with: np.ndarray | None,
) -> np.ndarray | None:
    """The shares (0..1) a model whose errors are `confusion` (rows true) reports on a smear of
    `mix`, corrected with `correct_with` when given; None when a class of the mix is unknown
    or has no row (the confusion holds no such cell)."""
    if any(c not in mix for c in classes):
        return None
    conf = np.asarray(confusion, np.float64)
    if (conf.sum(axis=1) == 0).any():
        return None
    true = np.array([mix[c] for c in classes], np.float64)
    read = (true / true.sum()) @ (conf / conf.sum(axis=1, keepdims=True))
    if correct_with is None:
        return read
    return estimate_shares(read * 10_000, confusion_rates(np.asarray(correct_with)))


def confusion_rates(confusion: np.ndarray) -> np.ndarray:
    """Row-normalised confusion P(predicted | true), with a small prior on every entry."""
    c = np.asarray(confusion, np.float64) + PRIOR
    return c / c.sum(axis=1, keepdims=True)


def estimate_shares(predicted: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Maximum-likelihood class shares (sum 1) behind `predicted` counts per class, given
    `rates` = P(predicted j | true i) (rows true)."""
    n = np.asarray(predicted, np.float64)
    k = rates.shape[0]
    total = n.sum()
    if total <= 0:
        return np.full(k, 1.0 / k)
    pi = np.full(k, 1.0 / k)
    for _ in range(_ITERATIONS):
        joint = pi[:, None] * rates  # (true, predicted)
        mix = joint.sum(axis=0)
        new = (joint / np.maximum(mix, 1e-300) * n[None, :]).sum(axis=1) / total
        converged = np.abs(new - pi).max() < _TOL
        pi = new
        if converged:
            break
    return pi


@dataclass(frozen=True)
class Differential:
    """Per class: raw share (classify-and-count) and, when enough cells were counted, the
    corrected share and its 95 % interval (fractions 0..1)."""

    classes: list[str]
    counts: list[int]
    raw: list[float]
    corrected: list[float] | None
    low: list[float] | None
    high: list[float] | None
    note: str

    @property
    def cells(self) -> int:
        return int(sum(self.counts))

    def to_dict(self) -> dict:
        def pct(v: list[float] | None) -> dict[str, float] | None:
            if v is None:
                return None
            return {c: round(100.0 * x, 2) for c, x in zip(self.classes, v, strict=True)}

        return {
            "cells": self.cells,
            "raw_percent": pct(self.raw),
            "corrected_percent": pct(self.corrected),
            "corrected_ci95_low": pct(self.low),
            "corrected_ci95_high": pct(self.high),
            "note": self.note,
        }


def corrected_differential(
    classes: list[str],
    counts: list[int],
    confusion: np.ndarray | None,
    seed: int = 0,
    bootstrap: int = BOOTSTRAP,
    min_cells: int = MIN_CELLS,
) -> Differential:
    """The raw and corrected differential of one run's predicted counts (see the module)."""
    n = np.asarray(counts, np.float64)
    total = float(n.sum())
    raw = (n / total if total else np.zeros_like(n)).tolist()
    if confusion is None:
        why = "raw count only: the bundle holds no out-of-fold confusion matrix"
        return Differential(classes, list(counts), raw, None, None, None, why)
    if total < min_cells:
        why = (
            f"raw count only: {int(total)} {'cell' if int(total) == 1 else 'cells'}, "
            f"the correction needs {min_cells}"
        )
        return Differential(classes, list(counts), raw, None, None, None, why)
    conf = np.asarray(confusion, np.float64)
    point = estimate_shares(n, confusion_rates(conf))
    rng = np.random.default_rng(seed)
    draws = np.empty((bootstrap, len(classes)))
    for b in range(bootstrap):
        smear = rng.multinomial(int(total), n / total)
        resampled = np.stack(
            [rng.multinomial(max(1, round(row.sum())), row / row.sum()) for row in conf]
        )
        draws[b] = estimate_shares(smear, confusion_rates(resampled))
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return Differential(
        classes, list(counts), raw, point.tolist(), low.tolist(), high.tolist(),
        "corrected for the model's out-of-fold confusions (maximum likelihood); 95 % interval "
        f"from {bootstrap} bootstrap draws of the cells and of the confusion matrix",
    )  # fmt: skip
