"""Split planning: the side of every image (grouped, random, folders, a manifest, K folds)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.cell_groups import resolve_groups
from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.errors import DataError
from wbc_edge.train.config import TrainConfig, split_kind

log = logging.getLogger(__name__)


@dataclass
class SplitPlan:
    """Sides per kept image, and how they were made."""

    name: str  # e.g. "grouped-80/10/10", "random-kfold5"
    kind: str
    description: str
    sides: list[str]
    groups: list[str]
    groups_origin: str


def make_split(
    images: ImageSet, cfg: TrainConfig, groups_csv: Path | None, out_dir: Path
) -> SplitPlan:
    """Sides for every image as the config asks (deterministic: a resumed run gets the same)."""
    kind = split_kind(cfg.split)
    if kind == "manifest":
        return _plan_from_manifest(images, Path(cfg.split.split(":", 1)[1]))
    groups, origin = _groups(images, groups_csv, required=kind == "grouped")
    fr = cfg.fractions
    frac_text = "/".join(f"{100 * f:g}" for f in fr)  # type: ignore[union-attr]
    sides = splits.make_sides(kind, images.records, groups, fr or [], cfg.data_seed, cfg.kfold)
    if cfg.kfold:
        name = f"{kind}-kfold{cfg.kfold}"
        per_fold = "whole source cells per fold" if kind == "grouped" else "random images"
        desc = f"{cfg.kfold} folds, {per_fold}"
    elif kind == "grouped":
        name, desc = f"grouped-{frac_text}", "stratified, whole source cells per side"
    elif kind == "random":
        name = f"random-{frac_text}"
        desc = "stratified random images (copies of one cell can fall on two sides)"
    else:
        name, desc = "folders", "the data's split folders"
    return SplitPlan(name, kind, desc, sides, groups, origin)


def _plan_from_manifest(images: ImageSet, path: Path) -> SplitPlan:
    rows = {r.path: r for r in splits.read_manifest(path)}
    sides, groups = [], []
    for rec in images.records:
        row = rows.get(rec.path.as_posix())
        if row is None:
            raise DataError(f"{rec.path.as_posix()} is not in the manifest", path)
        sides.append(row.side)
        groups.append(row.group)
    desc = f"sides from {path}"
    return SplitPlan(f"manifest-{path.stem}", "manifest", desc, sides, groups, f"manifest:{path}")


def _groups(images: ImageSet, groups_csv: Path | None, required: bool) -> tuple[list[str], str]:
    """Source-cell groups (core.dataset.cell_groups); a random or folder split only reports them, so
    there a missing groups table is a warning, not an error."""
    try:
        return resolve_groups(images, groups_csv)
    except DataError as exc:
        if required or groups_csv is not None:
            raise
        reason = str(exc)
    log.warning("no source-cell groups (%s); the manifest gets one group per file", reason)
    return [f"file:{r.path.as_posix()}" for r in images.records], "unavailable"


def sides_for_single(plan: SplitPlan) -> dict[str, list[int]]:
    """Indices per side; `train` must not be empty."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(plan.sides):
        out.setdefault(s, []).append(i)
    if not out.get("train"):
        raise DataError(f"split {plan.name} leaves no training images")
    return out


def subsample(images: ImageSet, per_class: int | None, seed: int) -> ImageSet:
    """At most `per_class` images of each class (seeded), before any split (journal: 100)."""
    if not per_class:
        return images
    rng = np.random.default_rng([seed, 17])
    keep: list[int] = []
    for cls in images.classes:
        idx = [i for i, r in enumerate(images.records) if r.label == cls]
        keep += sorted(rng.permutation(idx)[:per_class].tolist())
    return ImageSet(images.root, [images.records[i] for i in sorted(keep)], images.classes)
