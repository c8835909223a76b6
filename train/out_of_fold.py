"""Out-of-fold predictions: each K-fold model on its own held-out source cells.

Shared by `wbc-train count-model` (the calibration and the confusion matrix a bundle stores)
and `benchmarks/differential_cv.py` (per image, per cell, per class, smear differentials).
The held-out images are prepared the way the device would see them, one of three ways:

| colour | what the light is measured on |
| --- | --- |
| `run` | the held-out images pooled as one run (one camera: `core.colour.pooled_table`) |
| `image` | each image on its own (what bundles before the pooled estimate did) |
| `none` | nothing: the images as decoded |

and optionally through a camera shift applied to the raw image first (a lamp, a gamma).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.core.bundle import Bundle, load_bundle
from wbc_edge.core.colour import apply_lut, pooled_table
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import RUN_SAMPLE, ImageSet
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import DataError, NoCellFound
from wbc_edge.core.preprocess import prepare
from wbc_edge.core.preprocess_spec import PreprocessSpec

COLOUR_WAYS = ("run", "image", "none")
Shift = Callable[[np.ndarray], np.ndarray]


@dataclass
class HeldOut:
    """One fold's held-out images: labels, source cells, and the model's probabilities
    (NaN rows where no nucleus was found: a miss, never a guess)."""

    classes: list[str]
    paths: list[str]
    labels: np.ndarray  # (N,) int
    groups: list[str]  # source cell of each image
    probs: np.ndarray  # (N, classes) float32

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class per image; -1 where no nucleus was found."""
        found = np.isfinite(self.probs).all(axis=1)
        out = np.full(len(self.labels), -1)
        out[found] = np.nan_to_num(self.probs[found]).argmax(axis=1)
        return out

    def cells(self, keep: np.ndarray | None = None) -> list[np.ndarray]:
        """The image indices of each source cell (only images where `keep`, if given)."""
        by_cell: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            if keep is None or keep[i]:
                by_cell.setdefault(g, []).append(i)
        return [np.asarray(idx) for idx in by_cell.values()]

    @staticmethod
    def join(parts: list[HeldOut]) -> HeldOut:
        """All folds' held-out images as one set (every image once: the folds are disjoint)."""
        return HeldOut(
            parts[0].classes,
            [p for h in parts for p in h.paths],
            np.concatenate([h.labels for h in parts]),
            [g for h in parts for g in h.groups],
            np.concatenate([h.probs for h in parts]),
        )


def fold_dirs(run: Path) -> list[Path]:
    """The fold bundles of a `wbc-train --kfold K` run, fold 0 first."""
    folds = sorted((Path(run) / "folds").glob("fold*"), key=lambda p: int(p.name[4:]))
    if not folds:
        raise DataError("no folds/fold* here: not a wbc-train --kfold run", run)
    return folds


def held_out_images(bundle_dir: Path, everything: ImageSet) -> tuple[ImageSet, list[str]]:
    """The bundle's held-out (`test`) side, in the data's order, and each image's source cell."""
    rows = {r.path: r for r in splits.read_manifest(Path(bundle_dir) / "split.csv")}
    records = [
        r for r in everything.records
        if (row := rows.get(r.path.as_posix())) is not None and row.side == "test"
    ]  # fmt: skip
    groups = [rows[r.path.as_posix()].group for r in records]
    return ImageSet(everything.root, records, everything.classes), groups


def colour_spec(spec: PreprocessSpec, way: str) -> PreprocessSpec:
    """The bundle's spec with its light measured the given way (`run` needs a table)."""
    if way == "none" or spec.colour.method == "none":
        return spec.after_colour()
    return dataclasses.replace(spec, colour=dataclasses.replace(spec.colour, estimate=way))


def prepare_run(
    decoded: list[np.ndarray], spec: PreprocessSpec, way: str
) -> tuple[np.ndarray, np.ndarray]:
    """The crops of decoded images taken as one run, the light measured `way`; and which
    images gave a crop (a nucleus was found)."""
    spec = colour_spec(spec, way)
    lut = None
    if way == "run" and spec.colour.method != "none":
        step = max(1, len(decoded) // RUN_SAMPLE)
        lut = pooled_table(decoded[::step], spec.colour)
        spec = spec.after_colour()
    crops, found = [], np.zeros(len(decoded), bool)
    for i, rgb in enumerate(decoded):
        try:
            crops.append(prepare(rgb if lut is None else apply_lut(rgb, lut), spec))
            found[i] = True
        except NoCellFound:
            continue
    shape = (0, spec.height, spec.width, 3)
    return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), found


def predict_held_out(
    bundle_dir: Path,
    everything: ImageSet,
    way: str = "run",
    shift: Shift | None = None,
    model=None,
    decoded: list[np.ndarray] | None = None,
) -> HeldOut:
    """The bundle's Keras model on its held-out side, prepared `way` after `shift`: the
    model's own probabilities (uncalibrated: the temperature is fitted on these)."""
    from wbc_edge.train.dataset import predict_probabilities

    bundle: Bundle = load_bundle(bundle_dir, verify=False)
    images, groups = held_out_images(bundle_dir, everything)
    if decoded is None:
        decoded = [decode_image(images.root / r.path) for r in images.records]
    if shift is not None:
        decoded = [shift(rgb) for rgb in decoded]
    if model is None:
        import keras

        model = keras.saving.load_model(Path(bundle_dir) / "model.keras", compile=False)
    crops, found = prepare_run(decoded, bundle.preprocessing, way)
    probs = np.full((len(decoded), len(bundle.classes)), np.nan, np.float32)
    if found.any():
        probs[found] = predict_probabilities(model, crops, bundle.preprocessing)
    index = {c: i for i, c in enumerate(bundle.classes)}
    labels = np.array([index[r.label] for r in images.records])
    return HeldOut(list(bundle.classes), [r.path.as_posix() for r in images.records], labels,
                   groups, probs)  # fmt: skip
