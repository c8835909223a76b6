"""Fit what turns a model's outputs into a lab's differential (`wbc-train count-model`).

From a K-fold run's out-of-fold predictions (every image predicted by the fold model that
never saw its source cell; the light pooled per fold as the device pools it per run):

- a temperature (`core.temperature`), fitted by NLL, with the expected calibration error
  before and after and a reliability diagram (`calibration.png`);
- the confusion matrix (rows true, columns predicted, in source cells: `train.smears`) that
  `core.label_shift` corrects the differential with.

Both are written into a bundle's `count_model` (the run's fold 0, or the bundle shipped from
it); `wbc-convert` must run afterwards, so that parity covers the calibrated output.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wbc_edge.core.bundle import CountModel, load_bundle, save_bundle
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.dataset.plots import figure_png, pyplot
from wbc_edge.core.errors import DataError
from wbc_edge.core.label_shift import MIN_CELLS
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.temperature import calibrate, fit_temperature, nll, reliability
from wbc_edge.train.out_of_fold import HeldOut, fold_dirs, predict_held_out
from wbc_edge.train.smears import confusion_matrix

log = logging.getLogger(__name__)
PICTURE = "calibration.png"


def out_of_fold(run: Path, data_root: Path) -> HeldOut:
    """Every fold model on its own held-out side, light pooled per fold, uncalibrated."""
    everything = list_images(data_root)
    parts = []
    for fold in fold_dirs(run):
        held = predict_held_out(fold, everything, "run")
        log.info("%s: %d held-out images predicted", fold.name, len(held.labels))
        parts.append(held)
    return HeldOut.join(parts)


def fit_count_model(held: HeldOut, source: str) -> tuple[CountModel, dict]:
    """The count model of out-of-fold predictions, and what calibration changed (for the
    report: NLL and ECE before and after, the reliability rows)."""
    found = np.isfinite(held.probs).all(axis=1)
    if found.sum() < 10 * len(held.classes):
        raise DataError(f"too few out-of-fold predictions to fit on ({int(found.sum())})")
    probs, labels = held.probs[found], held.labels[found]
    t = fit_temperature(probs, labels)
    calibrated = calibrate(probs, t)
    ece_before, rows_before = reliability(probs, labels)
    ece_after, rows_after = reliability(calibrated, labels)
    stats = {
        "temperature": t,
        "images": int(found.sum()),
        "nll_before": round(nll(probs, labels), 4),
        "nll_after": round(nll(calibrated, labels), 4),
        "ece_before": round(ece_before, 4),
        "ece_after": round(ece_after, 4),
        "reliability_before": rows_before,
        "reliability_after": rows_after,
    }
    conf = np.round(confusion_matrix(held), 3).tolist()
    return CountModel(t, conf, source, MIN_CELLS), stats


def write_count_model(bundle_dir: Path, model: CountModel, stats: dict) -> Path:
    """Store the count model in the bundle, the numbers in its metrics, the diagram beside."""
    bundle = load_bundle(bundle_dir, verify=False)
    if bundle.count_model is not None and bundle.artifacts:
        log.info("%s: replacing its count model; run wbc-convert again for parity", bundle.path)
    bundle.count_model = model
    numbers = {k: v for k, v in stats.items() if not k.startswith("reliability")}
    bundle.add_metrics("out-of-fold:calibration", numbers, source=model.source)
    atomic_write(bundle.root / PICTURE, reliability_png(stats))
    return save_bundle(bundle)


def reliability_png(stats: dict) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, before and after."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    for key, name in (("before", "model's own"), ("after", f"T = {stats['temperature']:g}")):
        rows = stats[f"reliability_{key}"]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
                ms=3, label=f"{name} (ECE {stats[f'ece_{key}']:.3f})")  # fmt: skip
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.2, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"out-of-fold calibration, {stats['images']} images", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return figure_png(fig)
