"""What a lab would read: per image, per source cell, per class, and smear differentials.

    python benchmarks/differential_cv.py DATA_ROOT MODEL [MODEL ...] \\
        [--colour run,image,none] [--shifts none,warm,cool,gamma1.5] [--smears 200] [--out F]

Each MODEL is a `wbc-train --kfold K` folder (every fold model on its own held-out side) or a
single bundle (scored on its manifest's `test` side; a K-fold run's fold 0 has the same side).
Models given together must share their folds. Every held-out side is prepared as the device
would, its light measured per run (pooled), per image or not at all (`--colour`), after a
camera shift of the raw images (`--shifts`). Printed per row, side by side:

- accuracy per image and per source cell (one vote per cell: the share of its copies read
  right), and every class's recall over cells;
- the differential of simulated 300-cell smears at realistic mixes (`train.smears.MIXES`):
  mean |reported - true| in percentage points, the worst class of each mix, raw
  (classify-and-count), corrected for the confusions (`core.label_shift`, what the device
  does) and re-estimated by EM on calibrated probabilities (`train.smears.em_shares`, the
  alternative measured). The confusion matrix and the temperature are those of the *other*
  folds, as captured, so no smear is corrected with its own errors; a single bundle has no
  other folds and gets raw rows only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustness import gains, gamma

from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.decode import decode_image
from wbc_edge.core.temperature import fit_temperature
from wbc_edge.train.out_of_fold import HeldOut, held_out_images, predict_held_out
from wbc_edge.train.smears import MIXES, confusion_matrix, per_cell, per_image, smear_errors

SHIFTS = {
    "none": None,
    "warm": gains(1.12, 1.0, 0.85),
    "cool": gains(0.88, 1.0, 1.12),
    "gamma1.5": gamma(1.5),
    "gamma0.7": gamma(0.7),
}


def folds_of(model: Path) -> list[Path]:
    """The fold bundles of a K-fold run, or the bundle itself."""
    folds = sorted((model / "folds").glob("fold*"), key=lambda p: int(p.name[4:]))
    return folds or [model]


def evaluate(model: Path, data_root: Path, ways: list[str], shifts: list[str]) -> dict:
    """Held-out predictions of every fold, per (colour way, shift)."""
    import keras

    everything = list_images(data_root)
    out: dict[str, list[HeldOut]] = {}
    for fold in folds_of(model):
        images, _ = held_out_images(fold, everything)
        decoded = [decode_image(images.root / r.path) for r in images.records]
        net = keras.saving.load_model(fold / "model.keras", compile=False)
        for shift in shifts:
            for way in ways:
                held = predict_held_out(fold, everything, way, SHIFTS[shift], net, decoded)
                out.setdefault(f"{way}/{shift}", []).append(held)
        print(f"  {model.name} {fold.name}: {len(decoded)} held-out images", flush=True)
    return out


def summarise(
    parts: list[HeldOut], reference: list[HeldOut], smears: int, intervals: int = 0
) -> dict:
    """Per image, per cell and smear figures of one row (all folds)."""
    joined = HeldOut.join(parts)
    acc_img, rec_img = per_image(joined)
    acc_cell, rec_cell = per_cell(joined)
    errors: dict[str, dict[str, dict[str, list[float]]]] = {}
    for i, held in enumerate(parts):
        others = [r for j, r in enumerate(reference) if j != i]
        conf = np.sum([confusion_matrix(r) for r in others], axis=0) if others else None
        t = None
        if others:
            fit = HeldOut.join(others)
            found = np.isfinite(fit.probs).all(axis=1)
            t = fit_temperature(fit.probs[found], fit.labels[found])
        found = smear_errors(held, conf, smears, seed=i, temperature=t, intervals=intervals)
        for mix, ways in found.items():
            for way, per_class in ways.items():
                slot = errors.setdefault(mix, {}).setdefault(way, {})
                for c, values in per_class.items():
                    slot.setdefault(c, []).extend(values)
    smear = {
        mix: {
            way: {
                c: {"mae": float(np.mean(np.abs(v))), "bias": float(np.mean(v))}
                for c, v in per_class.items()
            }
            for way, per_class in ways.items()
        }
        for mix, ways in errors.items()
    }
    return {
        "images": len(joined.labels),
        "cells": len(set(joined.groups)),
        "per_image": {
            "accuracy": acc_img,
            "recall": dict(zip(joined.classes, rec_img, strict=True)),
        },
        "per_cell": {
            "accuracy": acc_cell,
            "recall": dict(zip(joined.classes, rec_cell, strict=True)),
        },
        "smears": smear,
    }


def print_rows(rows: dict[str, dict], classes: list[str]) -> None:
    short = [c[:4] for c in classes]
    head = f"{'model / colour / shift':<42} {'img':>6} {'cell':>6} " + " ".join(
        f"{s:>5}" for s in short
    )
    print("\nAccuracy per image and per source cell; recall over cells per class")
    print(head)
    for name, r in rows.items():
        rec = " ".join(f"{r['per_cell']['recall'][c]:>5.3f}" for c in classes)
        print(
            f"{name:<42} {r['per_image']['accuracy']:>6.3f} {r['per_cell']['accuracy']:>6.3f} {rec}"
        )
    print("\nSmear differential, mean |reported - true| (points), worst class per mix")
    mixes = list(MIXES)
    print(f"{'model / colour / shift':<42} {'way':<9} " + " ".join(f"{m[:12]:>13}" for m in mixes))
    for name, r in rows.items():
        for way in ("raw", "corrected", "em"):
            if way not in r["smears"][mixes[0]]:
                continue
            cells = []
            for m in mixes:
                per_class = r["smears"][m][way]
                worst = max(per_class, key=lambda c: per_class[c]["mae"])
                cells.append(f"{per_class[worst]['mae']:>5.1f} {worst[:4]:<4}")
            print(f"{name:<42} {way:<9} " + " ".join(f"{c:>13}" for c in cells))
    covered = {n: r for n, r in rows.items() if "covered" in r["smears"][mixes[0]]}
    if covered:
        print("\nCorrected 95 % interval: share of smears whose interval holds the true share")
        print(f"{'model / colour / shift':<42} " + " ".join(f"{m[:12]:>24}" for m in mixes))
        for name, r in covered.items():
            cells = []
            for m in mixes:
                per_class = r["smears"][m]["covered"]
                cells.append("/".join(f"{per_class[c]['bias']:.2f}" for c in classes))
            print(f"{name:<42} " + " ".join(f"{c:>24}" for c in cells))
    print("\nNormal smear (true: " + ", ".join(f"{c} {v:g} %" for c, v in MIXES["normal"].items())
          + "): reported share per class, raw -> corrected")  # fmt: skip
    for name, r in rows.items():
        parts = []
        for c in classes:
            true = MIXES["normal"][c]
            raw = true + r["smears"]["normal"]["raw"][c]["bias"]
            corr = r["smears"]["normal"].get("corrected", {}).get(c)
            parts.append(f"{c[:4]} {raw:.1f}" + (f"->{true + corr['bias']:.1f}" if corr else ""))
        print(f"{name:<42} " + "  ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--colour", default="run,image,none", help="ways to measure the light")
    ap.add_argument("--shifts", default="none,warm,cool,gamma1.5")
    ap.add_argument("--smears", type=int, default=200, help="smears per fold and mix")
    ap.add_argument(
        "--intervals", type=int, default=0,
        help="smears per fold and mix whose corrected 95 %% interval is checked for coverage",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, help="write every number as JSON")
    args = ap.parse_args()
    ways, shifts = args.colour.split(","), args.shifts.split(",")
    rows: dict[str, dict] = {}
    classes: list[str] = []
    for model in args.models:
        preds = evaluate(model, args.data_root, ways, shifts)
        reference = preds.get("run/none") or next(iter(preds.values()))
        for key, parts in preds.items():
            classes = parts[0].classes
            checked = args.intervals if key == "run/none" else 0
            rows[f"{model.name} / {key}"] = summarise(parts, reference, args.smears, checked)
    print_rows(rows, classes)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
