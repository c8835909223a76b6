"""One image, no profile: the bundle's training scale, the image's own estimate, or the rule?

    python benchmarks/single_image_scale.py DATA/bccd/JPEGImages [--frames 60]

Each BCCD frame is shown to the scale step alone (colour normalised with its own light, as a
run of one image is), at the BCCD camera's magnification and zoomed by 0.5 … 1.5 (another
camera). The truth is the median of all the unzoomed frames' estimates times the zoom (a
whole run's pooled scale). Prints, per zoom, the mean and 90th-percentile relative error of:
the training scale (`DEFAULT_SCALE`), the frame's own estimate, and `single_image_scale`'s
choice (what `wbc-edge` uses for a run of one image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_stain_image
from wbc_edge.edge_app.finder import DEFAULT_SCALE, CellFinder, _apply
from wbc_edge.edge_app.scale import single_image_scale

ZOOMS = (0.5, 0.75, 1.0, 1.25, 1.5)


def estimate(spec, rgb: np.ndarray) -> tuple[float | None, float]:
    """The frame's own estimate and the rule's choice, as a run of this one frame makes them."""
    finder = CellFinder(spec, "field")
    finder.prime_light([rgb])
    corrected = _apply(rgb, finder._colour(rgb, observe=False)[0])
    chosen, _, own = single_image_scale(corrected, DEFAULT_SCALE["field"])
    return own, chosen


def zoom(rgb: np.ndarray, z: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (round(w * z), round(h * z))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if z < 1 else cv2.INTER_LINEAR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder of BCCD JPEGImages")
    ap.add_argument("--frames", type=int, default=60, help="frames to use (every k-th)")
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    args = ap.parse_args(argv)
    files = sorted(args.data.glob("*.jpg"))
    if not files:
        print(f"single_image_scale: {args.data}: no .jpg files", file=sys.stderr)
        return 2
    files = files[:: max(1, len(files) // args.frames)][: args.frames]
    spec = load_bundle(args.model).preprocessing
    frames = [decode_stain_image(f) for f in files]
    base = [estimate(spec, rgb) for rgb in frames]
    truth1 = float(np.median([e for e, _ in base if e is not None]))
    training = DEFAULT_SCALE["field"]
    print(f"{len(frames)} BCCD frames; pooled scale at zoom 1: {truth1:.3f}; training {training}")
    cols = ["training scale", "own estimate", "wbc-edge's choice"]
    print("| zoom | true scale | " + " | ".join(f"{c} mean / p90 error" for c in cols) + " |")
    print("| --- " * (2 + len(cols)) + "|")
    for z in ZOOMS:
        ests = base if z == 1.0 else [estimate(spec, zoom(rgb, z)) for rgb in frames]
        truth = truth1 * z
        picks = {
            cols[0]: [training] * len(ests),
            cols[1]: [training if e is None else e for e, _ in ests],
            cols[2]: [chosen for _, chosen in ests],
        }
        cells = []
        for c in cols:
            err = np.abs(np.asarray(picks[c]) / truth - 1) * 100
            cells.append(f"{err.mean():.1f} % / {np.percentile(err, 90):.1f} %")
        print(f"| {z:g} | {truth:.2f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
