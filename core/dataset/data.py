"""List labelled images (no TensorFlow) and load them as cached uint8 arrays.

Layouts understood:
- folder of class folders: `<root>/<CLASS>/*.jpeg`
- the Kaggle layout with split folders: `<root>/<SPLIT>/<CLASS>/*.jpeg` (TRAIN, TEST, …)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.colour import apply_lut, pooled_table
from wbc_edge.core.decode import decode_image, is_image_file
from wbc_edge.core.errors import DataError, ImageError, NoCellFound
from wbc_edge.core.preprocess import prepare
from wbc_edge.core.preprocess_spec import PreprocessSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image. `path` is relative to the data root; `split` is the split folder."""

    path: Path
    label: str
    split: str | None = None


@dataclass
class ImageSet:
    """Records under one root, plus the class names in a fixed (sorted) order."""

    root: Path
    records: list[ImageRecord]
    classes: list[str]

    def counts(self) -> dict[str, int]:
        c = Counter(r.label for r in self.records)
        return {k: c[k] for k in self.classes}

    def labels(self) -> np.ndarray:
        """Class indices of the records, in `classes` order."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[r.label] for r in self.records], dtype=np.int64)


def list_images(root: Path | str, split: str | None = None) -> ImageSet:
    """List a folder of class folders, or the class folders under split folders.

    `split` picks one split folder of the Kaggle layout (e.g. "TRAIN"); without it, every
    split folder found is listed with `ImageRecord.split` set.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("not a folder", root)
    base = root / split if split else root
    if split and not base.is_dir():
        raise DataError(f"no split folder {split!r} here", root)
    records = _class_tree(base, None)
    if not records:
        records = [r for sub in _subdirs(base) for r in _class_tree(sub, sub.name)]
        records = [ImageRecord(Path(r.split) / r.path, r.label, r.split) for r in records]
    if not records:
        raise DataError(
            "no images found (expected <root>/<CLASS>/*.jpg or <root>/<SPLIT>/<CLASS>/*.jpg)", base
        )
    classes = sorted({r.label for r in records})
    return ImageSet(base, records, classes)


def _class_tree(base: Path, split: str | None) -> list[ImageRecord]:
    records = []
    for class_dir in _subdirs(base):
        try:
            files = sorted(p for p in class_dir.iterdir() if is_image_file(p))
        except OSError as exc:  # an unreadable class folder: named, not silently dropped
            log.warning("skipping folder %s: %s", class_dir, exc.strerror or exc)
            continue
        records += [ImageRecord(p.relative_to(base), class_dir.name, split) for p in files]
    return records


def _subdirs(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass
class LoadedImages:
    """Preprocessed uint8 crops for the records that could be used, and why others could not."""

    images: np.ndarray  # (N, H, W, 3) uint8, model colour order
    records: list[ImageRecord]
    skipped: dict[str, str] = field(default_factory=dict)  # path -> one-line reason


def load_images(
    image_set: ImageSet,
    spec: PreprocessSpec,
    records: Sequence[ImageRecord] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LoadedImages:
    """Decode and `prepare` each record once; unreadable or cell-less files are skipped by name.

    A spec whose light is estimated per run takes the records as one run (one camera): one
    table, `core.colour.pooled_table` of an even sample of them, for every image.
    """
    records = list(image_set.records if records is None else records)
    out = np.empty((len(records), spec.height, spec.width, 3), np.uint8)
    kept: list[ImageRecord] = []
    skipped: dict[str, str] = {}
    lut = run_table(image_set.root, records, spec)
    crop_spec = spec if lut is None else spec.after_colour()
    for i, rec in enumerate(records):
        try:
            rgb = decode_image(image_set.root / rec.path)
            out[len(kept)] = prepare(rgb if lut is None else apply_lut(rgb, lut), crop_spec)
            kept.append(rec)
        except (ImageError, NoCellFound) as exc:
            skipped[rec.path.as_posix()] = exc.message
            log.warning("skipping %s: %s", rec.path, skipped[rec.path.as_posix()])
        if progress:
            progress(i + 1, len(records))
    return LoadedImages(out[: len(kept)], kept, skipped)


RUN_SAMPLE = 400  # images a data set's pooled light is measured on


def run_table(root: Path, records: Sequence[Any], spec: PreprocessSpec) -> np.ndarray | None:
    """The colour table of `records` (anything with a `path` under `root`) taken as one run,
    for a spec that estimates its light per run (None: the spec corrects each image itself,
    or has no colour step)."""
    if spec.colour.method == "none" or spec.colour.estimate != "run" or not records:
        return None
    step = max(1, len(records) // RUN_SAMPLE)
    sample = []
    for rec in records[::step]:
        try:
            sample.append(decode_image(root / rec.path))
        except ImageError:
            continue
    return pooled_table(sample, spec.colour)
