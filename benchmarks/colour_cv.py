"""The colour step on unseen cells: each K-fold model scored with and without it, under shifts.

    python benchmarks/colour_cv.py DATA_ROOT RUN [--shifts none,warm,cool,gamma1.5] [--out F]

RUN is a `wbc-train --kfold K` folder. Every fold model predicts its own held-out images
(source cells it never saw) prepared two ways, side by side: with the fold bundle's
preprocessing as it was trained, and with the colour step added (`core.colour`, the
references measured on DATA_ROOT as `wbc-train --colour reference` measures them), each under
the camera shifts asked for. Printed: accuracy per fold and mean ± sd, and the per-class
recall of each way on unshifted images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cv_eval import held_out
from robustness import gains, gamma

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import NoCellFound
from wbc_edge.core.preprocess import prepare
from wbc_edge.train.dataset import predict_probabilities
from wbc_edge.train.model_spec import measure_colour_spec

SHIFTS = {
    "none": lambda x: x,
    "warm": gains(1.12, 1.0, 0.85),
    "cool": gains(0.88, 1.0, 1.12),
    "green": gains(1.0, 1.08, 1.0),
    "gamma1.5": gamma(1.5),
    "gamma0.7": gamma(0.7),
}


def prepared(decoded: list[np.ndarray], shift, spec) -> tuple[np.ndarray, np.ndarray]:
    """The crops of the images whose nucleus is found, and which those are."""
    crops, found = [], np.zeros(len(decoded), bool)
    for i, rgb in enumerate(decoded):
        try:
            crops.append(prepare(shift(rgb), spec))
            found[i] = True
        except NoCellFound:
            continue
    return np.stack(crops) if crops else np.zeros((0,)), found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--shifts", default="none,warm,cool,gamma1.5")
    ap.add_argument("--folds", help="only these folds, e.g. 0,1 (default: all)")
    ap.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = ap.parse_args()
    import keras

    shifts = args.shifts.split(",")
    everything = list_images(args.data_root)
    colour = measure_colour_spec(everything)
    print(f"colour references: glass {colour.background}, red cells {colour.red_cell}")
    folds = sorted((args.run / "folds").glob("fold*"))
    if args.folds:
        folds = [args.run / "folds" / f"fold{k}" for k in args.folds.split(",")]
    rows: dict[str, list[float]] = {}
    recalls: dict[str, list[list[float]]] = {"as trained": [], "colour step": []}
    for fold in folds:
        bundle = load_bundle(fold)
        specs = {
            "as trained": bundle.preprocessing,
            "colour step": dataclasses.replace(bundle.preprocessing, colour=colour),
        }
        model = keras.saving.load_model(fold / "model.keras")
        images = held_out(fold, everything)
        labels = np.array(images.labels())
        decoded = [decode_image(images.root / r.path) for r in images.records]
        line = f"{fold.name}: n={len(decoded)}"
        for way, spec in specs.items():
            for shift in shifts:
                crops, found = prepared(decoded, SHIFTS[shift], spec)
                pred = np.full(len(decoded), -1)  # no nucleus found: a miss, never a guess
                if found.any():
                    pred[found] = predict_probabilities(model, crops, spec).argmax(1)
                accuracy = float(np.mean(pred == labels))
                rows.setdefault(f"{way} / {shift}", []).append(accuracy)
                line += f"  {way}/{shift} {accuracy:.3f}"
                if shift == "none":  # a cell whose nucleus is not found counts as misread
                    recalls[way].append(
                        [float(np.mean(pred[labels == k] == k)) for k in range(len(bundle.classes))]
                    )
        print(line, flush=True)
    classes = load_bundle(folds[0]).classes
    print(f"\n{'preprocessing / shift':<28}{'accuracy (mean ± sd over folds)':>34}")
    for key, values in rows.items():
        sd = np.std(values, ddof=1) if len(values) > 1 else float("nan")
        print(f"{key:<28}{np.mean(values):>26.3f} ± {sd:.3f}")
    for way, per_fold in recalls.items():
        mean = np.mean(per_fold, axis=0)
        named = ", ".join(f"{c} {v:.3f}" for c, v in zip(classes, mean, strict=True))
        print(f"recall, {way}, unshifted: {named}")
    if args.out:
        args.out.write_text(json.dumps({"accuracy": rows, "recall": recalls}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
