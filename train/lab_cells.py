"""A lab's reviewed cells: the crops its device classified, labelled by its technician.

Each folder is a report written by `wbc-edge classify|run --report` and reviewed with
`wbc-edge review`: report.json lists every cell with `cells/N.png`, the crop exactly as the
model saw it (RGB, the model's input size), and review.json holds the technician's decisions
(`confirmed`: ids whose label is right; `corrections`: {id: class}). Only decided cells are
taken, each with the technician's class; a cell nobody looked at is never trained on with the
model's own label, and "not a white cell" choices are left out. Both files are decoded by their
shapes in `core.report_shapes`: a file that is not one is one error naming it and listing every
problem.

Cells are grouped by the run or slide they came from (`unit`): the report's sample id when it
has one, else the report itself. `hold_out` keeps whole units on one side, so one slide's cells
never teach and test at once; with one unit only, it falls back to the frames (source images)
and says so.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.decode import decode_image
from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import DataError, WbcError
from wbc_edge.core.json_limits import read_json, read_limited
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.report_shapes import Report, Review
from wbc_edge.core.typed_json import decode_file

REPORT_BYTES = 256_000_000
CROP_BYTES = 4_000_000
MIN_LEARN = 5  # cells of every class the child must learn from
MIN_TEST = 3  # cells of every class the held-out runs must hold


@dataclass
class LabCells:
    """Reviewed cells: crops (N, H, W, 3) uint8 in the model's colour order, class indices,
    the run/slide (`units`) and frame (`frames`) of each, and what each report gave."""

    classes: list[str]
    crops: np.ndarray
    labels: np.ndarray
    units: list[str]
    frames: list[str]
    files: list[str]
    reports: list[dict[str, Any]] = field(default_factory=list)

    def per_class(self, idx: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if idx is None else self.labels[idx]
        counts = Counter(int(v) for v in labels)
        return {c: counts.get(i, 0) for i, c in enumerate(self.classes)}


def read_reviewed(folders: list[Path], classes: list[str], spec: PreprocessSpec) -> LabCells:
    """Every decided cell of the reviewed report folders; DataError naming the folder when one
    is not a reviewed report of a model with these classes and this input size."""
    crops, labels, units, frames, files, reports = [], [], [], [], [], []
    for folder in folders:
        got = _read_one(Path(folder), classes, spec)
        crops += got["crops"]
        labels += got["labels"]
        units += [got["unit"]] * len(got["labels"])
        frames += [f"{got['unit']}:{s}" for s in got["frames"]]
        files += got["files"]
        reports.append(got["record"])
    shape = (0, spec.height, spec.width, 3)
    return LabCells(
        list(classes),
        np.stack(crops) if crops else np.zeros(shape, np.uint8),
        np.asarray(labels, np.int64),
        units,
        frames,
        files,
        reports,
    )


def _read_one(folder: Path, classes: list[str], spec: PreprocessSpec) -> dict[str, Any]:
    report_file, review_file = folder / "report.json", folder / "review.json"
    if not report_file.is_file():
        raise DataError("no report.json: not a folder written by wbc-edge --report", folder)
    if not review_file.is_file():
        raise DataError("not reviewed (no review.json): run `wbc-edge review` on it first", folder)
    report: Report = _decoded(Report, report_file)
    review: Review = _decoded(Review, review_file)
    meta, corrections, confirmed = report.meta, review.corrections, set(review.confirmed)
    if meta.classes != list(classes):
        raise DataError(
            f"was counted with classes {meta.classes}, the bundle has {classes}", folder
        )
    index = {c: i for i, c in enumerate(classes)}
    crops, labels, frames, files = [], [], [], []
    for cell in report.cells:
        cid = str(cell.id)
        label = corrections.get(cid, cell.label if cid in confirmed else None)
        if label not in index:
            continue  # undecided, or "not a white cell"
        crops.append(_crop(folder, cell.crop, spec))
        labels.append(index[label])
        frames.append(f"{cell.source}#{cell.frame}")
        files.append(f"{folder.name}/{cell.crop}")
    unit = str(meta.sample or meta.run_id or folder.name)
    record = {
        "folder": folder.name,
        "run_id": meta.run_id,
        "sample": meta.sample,
        "counted_with": meta.model,
        "counted_with_sha256": meta.bundle_sha256,
        "review_version": review.version,
        "signed": review.signature is not None,
        "report_sha256": sha256_file(report_file),
        "cells": {c: labels.count(i) for c, i in index.items()},
        "corrected": sum(1 for v in corrections.values() if v in index),
    }
    return {"crops": crops, "labels": labels, "frames": frames, "files": files,
            "unit": unit, "record": record}  # fmt: skip


def _decoded(kind: type, file: Path) -> Any:
    """`file` decoded as `kind`; one DataError naming the file with every problem otherwise."""
    return decode_file(kind, read_json(file, REPORT_BYTES, error=DataError), file, DataError)


def _crop(folder: Path, rel: str, spec: PreprocessSpec) -> np.ndarray:
    """The crop the model saw, back in the model's colour order (the report stores RGB)."""
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        raise DataError(f"cell crop {rel!r} lies outside the report", folder)
    try:
        rgb = decode_image(read_limited(path, CROP_BYTES, error=DataError))
    except WbcError as exc:
        raise DataError(f"cell crop {rel}: {exc.message}", folder) from None
    if rgb.shape[:2] != (spec.height, spec.width):
        raise DataError(
            f"cell crop {rel} is {rgb.shape[1]}x{rgb.shape[0]}, the model takes "
            f"{spec.width}x{spec.height}: counted with another model's preprocessing",
            folder,
        )
    return rgb[..., ::-1].copy() if spec.color_order == "BGR" else rgb


@dataclass
class HoldOut:
    """Which cells teach (`learn`) and which test (`test`), and what was held out whole."""

    learn: np.ndarray
    test: np.ndarray
    by: str  # "run/slide" or "frame"
    held_out: list[str]


def hold_out(
    cells: LabCells,
    min_learn: int = MIN_LEARN,
    min_test: int = MIN_TEST,
    fraction: float = 0.3,
) -> HoldOut:
    """Hold out whole runs/slides (frames when there is one run): the smallest set of units,
    closest to `fraction` of the cells, leaving every class `min_learn` cells to learn and
    `min_test` to test. DataError naming the class when no such split exists."""
    have = cells.per_class()
    short = {c: n for c, n in have.items() if n < min_learn + min_test}
    if short:
        raise DataError(_too_few(short, min_learn, min_test, have))
    keys, by = (cells.units, "run/slide") if len(set(cells.units)) > 1 else (cells.frames, "frame")
    units = sorted(set(keys))
    best: tuple[float, tuple[str, ...]] | None = None
    for chosen in _candidates(units):
        test = np.isin(np.asarray(keys), chosen)
        t, lr = cells.per_class(np.flatnonzero(test)), cells.per_class(np.flatnonzero(~test))
        if all(t[c] >= min_test and lr[c] >= min_learn for c in cells.classes):
            score = abs(test.mean() - fraction)
            if best is None or score < best[0]:
                best = (score, chosen)
    if best is None:
        raise DataError(
            f"no way to hold out whole {by}s leaving every class {min_learn} cells to learn "
            f"and {min_test} to test (cells per class: {_fmt(have)}); review more runs"
        )
    test = np.isin(np.asarray(keys), best[1])
    return HoldOut(np.flatnonzero(~test), np.flatnonzero(test), by, list(best[1]))


def _candidates(units: list[str], limit: int = 20_000):
    """Subsets of units to hold out: every one for few units, random ones (seeded) for many."""
    if len(units) <= 12:
        for r in range(1, len(units)):
            yield from itertools.combinations(units, r)
        return
    rng = np.random.default_rng(0)
    for _ in range(limit):
        r = int(rng.integers(1, len(units)))
        yield tuple(sorted(rng.choice(units, r, replace=False).tolist()))


def _too_few(short: dict[str, int], min_learn: int, min_test: int, have: dict[str, int]) -> str:
    need = min_learn + min_test
    names = ", ".join(f"{c} has {n}" for c, n in short.items())
    return (
        f"too few reviewed cells to learn and test: {names}; each class needs {need} "
        f"({min_learn} to learn, {min_test} to test; cells per class: {_fmt(have)})"
    )


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in counts.items())
