"""Metrics that match use: per source cell, and the differential of simulated smears.

A lab reads the differential of one smear, not a balanced accuracy. `smear_errors` draws
300-cell smears from held-out cells at the mixes of `MIXES` (each cell a random copy of a
random source cell of its class) and compares the shares a lab would read with the true ones,
raw (classify-and-count) and corrected for the model's confusions (`core.label_shift`).

The mixes are `core.label_shift.MIXES` (with their reference).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wbc_edge.core.label_shift import (
    MIXES,
    confusion_rates,
    corrected_differential,
    estimate_shares,
)
from wbc_edge.core.temperature import calibrate
from wbc_edge.train.out_of_fold import HeldOut

SMEAR_CELLS = 300


def per_cell(held: HeldOut) -> tuple[float, list[float]]:
    """Accuracy with one vote per source cell (the share of its copies read right, so every
    cell weighs the same however many copies it has) and each class's recall over cells."""
    right = held.predicted == held.labels
    cells = held.cells()
    score = np.array([right[idx].mean() for idx in cells])
    label = np.array([held.labels[idx[0]] for idx in cells])
    recall = [
        float(score[label == k].mean()) if (label == k).any() else float("nan")
        for k in range(len(held.classes))
    ]
    return float(score.mean()), recall


def per_image(held: HeldOut) -> tuple[float, list[float]]:
    """Accuracy over images and each class's recall (a cell without a nucleus found is a miss)."""
    right = held.predicted == held.labels
    recall = [float(right[held.labels == k].mean()) for k in range(len(held.classes))]
    return float(right.mean()), recall


Corrector = Callable[[np.ndarray], np.ndarray]  # predicted counts -> shares


def em_shares(probs: np.ndarray, train_prior: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Class shares re-estimated from calibrated probabilities by EM (Saerens et al. 2002):
    each cell's posterior reweighted by the new over the training prior, until stable. The
    alternative to `core.label_shift` that `smear_errors` measures beside it."""
    pi = train_prior.copy()
    for _ in range(iterations):
        w = probs * (pi / train_prior)[None, :]
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        new = w.mean(axis=0)
        if np.abs(new - pi).max() < 1e-8:
            return new
        pi = new
    return pi


def smear_errors(
    held: HeldOut,
    confusion: np.ndarray | None,
    smears: int = 200,
    seed: int = 0,
    cells: int = SMEAR_CELLS,
    temperature: float | None = None,
    intervals: int = 0,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per mix, per way: the reported minus true share of each class (percentage points), one
    value per simulated smear. Ways: `raw` (classify-and-count); `corrected` with `confusion`
    (rows true; `core.label_shift`); `em` on the probabilities at `temperature` (`em_shares`,
    training prior balanced). None leaves a way out. For the first `intervals` smears of each
    mix, `covered` holds 1.0 where the corrected 95 % interval (`corrected_differential`,
    200 bootstrap draws) holds the true share, else 0.0."""
    rng = np.random.default_rng(seed)
    k = len(held.classes)
    pred = held.predicted
    copies: dict[int, list[np.ndarray]] = {c: [] for c in range(k)}
    for idx in held.cells():
        copies[int(held.labels[idx[0]])].append(idx)
    rates = None if confusion is None else confusion_rates(confusion)
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for mix_name, mix in MIXES.items():
        true = np.array([mix[c] for c in held.classes], np.float64)
        n_true = np.round(true / true.sum() * cells).astype(int)
        true_share = 100.0 * n_true / n_true.sum()
        errors: dict[str, list[list[float]]] = {"raw": []}
        if rates is not None:
            errors["corrected"] = []
        if temperature is not None:
            errors["em"] = []
        if intervals and confusion is not None:
            errors["covered"] = []
        for n_smear in range(smears):
            drawn = []
            for c in range(k):
                if not copies[c]:
                    continue
                for _cell in range(n_true[c]):
                    group = copies[c][rng.integers(len(copies[c]))]
                    drawn.append(int(group[rng.integers(len(group))]))
            seen = np.asarray([i for i in drawn if pred[i] >= 0], np.int64)
            if not len(seen):
                continue
            counts = np.bincount(pred[seen], minlength=k).astype(np.float64)
            errors["raw"].append((100.0 * counts / counts.sum() - true_share).tolist())
            if rates is not None:
                shares = estimate_shares(counts, rates)
                errors["corrected"].append((100.0 * shares - true_share).tolist())
            if "covered" in errors and n_smear < intervals:
                diff = corrected_differential(
                    held.classes, counts.astype(int).tolist(), confusion, seed=n_smear,
                    bootstrap=200, min_cells=1,
                )  # fmt: skip
                lo, hi = 100.0 * np.asarray(diff.low), 100.0 * np.asarray(diff.high)
                inside = (lo - 1e-9 <= true_share) & (true_share <= hi + 1e-9)
                errors["covered"].append(inside.astype(float).tolist())
            if temperature is not None:
                probs = calibrate(held.probs[seen], temperature)
                shares = em_shares(probs.astype(np.float64), np.full(k, 1.0 / k))
                errors["em"].append((100.0 * shares - true_share).tolist())
        out[mix_name] = {
            way: {c: [e[j] for e in rows] for j, c in enumerate(held.classes)}
            for way, rows in errors.items()
        }
    return out


def confusion_matrix(held: HeldOut) -> np.ndarray:
    """(true, predicted) in source cells: each held-out cell adds the shares of its copies'
    predicted classes (copies whose nucleus was found), so a row sums to its class's number
    of cells. Copies of one cell are not independent draws: a bootstrap of this matrix
    resamples cells (`core.label_shift`), not copies."""
    k = len(held.classes)
    pred = held.predicted
    out = np.zeros((k, k))
    for idx in held.cells(pred >= 0):
        out[held.labels[idx[0]]] += np.bincount(pred[idx], minlength=k) / len(idx)
    return out
