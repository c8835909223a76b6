"""Calibrated probabilities: one temperature, fitted out of fold, applied by every runtime.

A network trained with label smoothing and balanced classes is not calibrated: a cell called
0.9 NEUTROPHIL is right more or less often than 9 times in 10. Temperature scaling (Guo et al.
2017) divides the logits by one number T fitted on predictions of cells the model never saw;
the label is unchanged (the order of the classes is kept), only the confidence moves. On
probabilities, p' = softmax(log(p) / T), which equals a softmax of logits / T.

`calibrate` is the one place this happens: `core.runtime.Runtime.predict` (every backend) and
the float reference of `wbc-convert`'s parity both call it, so parity covers the calibrated
output.
"""

from __future__ import annotations

import numpy as np

T_RANGE = (0.05, 20.0)  # a fitted or stored temperature outside this range is rejected
ECE_BINS = 15
_EPS = 1e-7


def calibrate(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """(N, classes) probabilities at temperature T (None or 1: unchanged), row by row."""
    p = np.asarray(probs, np.float32)
    if temperature is None or temperature == 1.0 or p.size == 0:
        return p
    logits = np.log(np.clip(p.astype(np.float64), _EPS, 1.0)) / float(temperature)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = np.clip(np.asarray(probs, np.float64)[np.arange(len(labels)), labels], _EPS, 1.0)
    return float(-np.mean(np.log(p)))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the NLL of out-of-fold predictions (golden-section search on log T)."""
    labels = np.asarray(labels, np.int64)
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    golden = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_t: float) -> float:
        return nll(calibrate(probs, float(np.exp(log_t))), labels)

    a, b = lo + (1 - golden) * (hi - lo), lo + golden * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - golden) * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = loss(b)
    return round(float(np.exp((lo + hi) / 2.0)), 4)


def reliability(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error (top-1 confidence, equal-width bins) and the bins' rows
    (confidence range, mean confidence, accuracy, cells) for a reliability diagram."""
    p = np.asarray(probs, np.float64)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    right = pred == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if not n:
            continue
        mean_conf, acc = float(conf[sel].mean()), float(right[sel].mean())
        ece += n / len(conf) * abs(acc - mean_conf)
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "confidence": mean_conf,
                "accuracy": acc,
                "cells": n,
            }
        )
    return float(ece), rows
