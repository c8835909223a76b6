"""Does test-time augmentation pay? Accuracy of each K-fold model on its held-out fold with
1, 2, 4 and 8 dihedral views (flips and 90° rotations, probabilities averaged), side by side.

    python benchmarks/tta_eval.py /work/runs/lite0-transfer-k5 DATA_ROOT [--out tta.json]

DATA_ROOT is the class-folder tree the run trained on. Every view costs one more forward pass
per cell, so the table's last column is the cost in model calls; compare it with the INT8
ms/cell of `benchmarks/convert_bench.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_app.bundle import load_bundle
from train import splits
from train.data import ImageSet, list_images
from train.dataset import load_cached, predict_probabilities

# The eight symmetries of the square, in the order views are added.
VIEWS = [(0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True)]


def view(images: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(images, turns, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


def fold_probabilities(fold_dir: Path, data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(views, N, classes) probabilities on the fold's held-out side, and the true labels."""
    import keras

    bundle = load_bundle(fold_dir)
    rows = [r for r in splits.read_manifest(fold_dir / "split.csv") if r.side == "test"]
    everything = list_images(data_root)
    wanted = {r.path for r in rows}
    records = [r for r in everything.records if r.path.as_posix() in wanted]
    image_set = ImageSet(everything.root, records, everything.classes)
    loaded = load_cached(image_set, bundle.preprocessing, None)  # a few seconds; no cache file
    model = keras.saving.load_model(fold_dir / "model.keras")
    probs = np.stack(
        [
            predict_probabilities(model, view(loaded.images, t, f), bundle.preprocessing)
            for t, f in VIEWS
        ]
    )
    labels = np.array([everything.classes.index(r.label) for r in loaded.records])
    return probs, labels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kfold_dir", type=Path)
    p.add_argument("data_root", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    counts = (1, 2, 4, 8)
    table: dict[str, dict[int, float]] = {}
    for fold_dir in sorted((args.kfold_dir / "folds").iterdir()):
        probs, labels = fold_probabilities(fold_dir, args.data_root)
        table[fold_dir.name] = {
            n: float(np.mean(probs[:n].mean(axis=0).argmax(axis=1) == labels)) for n in counts
        }
        print(fold_dir.name, "  ".join(f"{n}: {table[fold_dir.name][n]:.4f}" for n in counts))
    print(f"\n| views | model calls/cell | accuracy mean ± sd over {len(table)} folds |")
    print("| --- | --- | --- |")
    for n in counts:
        acc = [t[n] for t in table.values()]
        print(f"| {n} | {n} | {np.mean(acc):.4f} ± {np.std(acc, ddof=1):.4f} |")
    if args.out:
        args.out.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
