"""How much the frames a run's light is measured on move the model: one bundle, its held-out side.

    python benchmarks/light_sample.py DATA_ROOT [--model models/default] [--dead-zone 0.03]

The bundle's Keras model scores its own held-out images (its split's `test` side, in the data's
order: class by class, as a folder of class folders is read) with the colour table built
three ways, side by side: none (the identity), the light pooled over an even sample of the
images, and pooled over the first 16 images only (all of one class in a class-sorted folder).
`--dead-zone T` adds the same after leaving each reference's deviations under T (relative,
per channel) uncorrected, with and without a warm lamp, a cool LED and a gamma of 1.5. Printed:
accuracy and each class's recall per image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustness import gains, gamma

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.colour import (
    Illumination,
    apply_lut,
    colour_lut,
    measure_illumination,
    pooled_illumination,
)
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import NoCellFound
from wbc_edge.core.preprocess import prepare
from wbc_edge.edge_app.light import CALIBRATION_FRAMES
from wbc_edge.train.out_of_fold import held_out_images

SHIFTS = {"warm": gains(1.12, 1.0, 0.85), "cool": gains(0.88, 1.0, 1.12), "gamma1.5": gamma(1.5)}


def dead_zone(ill: Illumination, colour, tol: float) -> Illumination:
    """Each reference moved towards the spec's by `tol` (relative, per channel, not past it)."""

    def shrink(seen, ref):
        if seen is None:
            return None
        r = np.log(np.maximum(seen, 1.0) / np.asarray(ref))
        r = np.sign(r) * np.maximum(np.abs(r) - tol, 0.0)
        return tuple(float(v) for v in np.asarray(ref) * np.exp(r))

    return Illumination(
        shrink(ill.background, colour.background), shrink(ill.red_cell, colour.red_cell)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--dead-zone", type=float, help="also try leaving deviations under this")
    args = ap.parse_args()
    import keras

    from wbc_edge.train.dataset import predict_probabilities

    bundle = load_bundle(args.model, verify=False)
    spec, colour = bundle.preprocessing, bundle.preprocessing.colour
    images, _ = held_out_images(args.model, list_images(args.data_root))
    labels = images.labels()
    decoded = [decode_image(images.root / r.path) for r in images.records]
    model = keras.saving.load_model(args.model / "model.keras", compile=False)

    def score(name: str, frames: list[np.ndarray], lut: np.ndarray | None) -> None:
        crops, kept = [], []
        for i, rgb in enumerate(frames):
            try:
                crops.append(
                    prepare(rgb if lut is None else apply_lut(rgb, lut), spec.after_colour())
                )
                kept.append(i)
            except NoCellFound:
                continue
        pred = predict_probabilities(model, np.stack(crops), spec).argmax(1)
        y = labels[kept]
        recall = " / ".join(f"{np.mean(pred[y == k] == k):.3f}" for k in range(len(bundle.classes)))
        print(f"{name:<42} {np.mean(pred == y):.4f}   {recall}", flush=True)

    def light(frames: list[np.ndarray]) -> Illumination:
        return pooled_illumination([measure_illumination(rgb, colour) for rgb in frames])

    print(f"{bundle.name}: {len(decoded)} held-out images; accuracy, recall {bundle.classes}")
    step = max(1, len(decoded) // CALIBRATION_FRAMES)
    even, first = light(decoded[::step]), light(decoded[:CALIBRATION_FRAMES])
    score("identity (no table)", decoded, None)
    score("light pooled over an even sample", decoded, colour_lut(even, colour))
    score(f"light pooled over the first {CALIBRATION_FRAMES}", decoded, colour_lut(first, colour))
    print(f"  (first {CALIBRATION_FRAMES}: glass {first.background}, red cells {first.red_cell})")
    if args.dead_zone:
        tol = args.dead_zone
        score(f"first {CALIBRATION_FRAMES}, dead zone {tol:g}", decoded,
              colour_lut(dead_zone(first, colour, tol), colour))  # fmt: skip
        for name, shift in SHIFTS.items():
            shifted = [shift(rgb) for rgb in decoded]
            seen = light(shifted[:CALIBRATION_FRAMES])
            score(
                f"{name}, dead zone {tol:g}",
                shifted,
                colour_lut(dead_zone(seen, colour, tol), colour),
            )
            score(f"{name}, no dead zone", shifted, colour_lut(seen, colour))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
