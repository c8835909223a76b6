"""Honest splits: stratified random, split folders, grouped by source cell, and K-fold.

A split is a list of sides (train/val/test or fold0…foldK-1), one per record, saved as a
manifest CSV (path, class, group, side) so a run can be reproduced exactly.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.core.dataset.data import ImageRecord
from wbc_edge.core.errors import DataError

SIDE_NAMES = {1: ("train",), 2: ("train", "val"), 3: ("train", "val", "test")}
MANIFEST_COLUMNS = ("path", "class", "group", "side")


@dataclass(frozen=True)
class ManifestRow:
    path: str  # posix, relative to the data root
    label: str
    group: str
    side: str


def side_names(fractions: Sequence[float]) -> tuple[str, ...]:
    """train/val[/test] for 2 or 3 fractions."""
    if len(fractions) not in SIDE_NAMES or len(fractions) == 1:
        raise DataError(f"a split needs 2 or 3 fractions, got {list(fractions)}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    return SIDE_NAMES[len(fractions)]


def parse_fractions(text: str) -> list[float]:
    """'80/10/10' or '0.7,0.3' → fractions summing to 1."""
    parts = [float(p) for p in text.replace(",", "/").split("/") if p.strip()]
    total = sum(parts)
    if total <= 0:
        raise DataError(f"bad split fractions {text!r}")
    return [p / total for p in parts]


def stratified_random(labels: Sequence[str], fractions: Sequence[float], seed: int) -> list[str]:
    """Each class shuffled and cut by the fractions (each side within 1 image of exact)."""
    names = side_names(fractions)
    rng = np.random.default_rng(seed)
    sides = [""] * len(labels)
    for idx in _by_class(labels).values():
        idx = rng.permutation(idx)
        for side, part in zip(names, _cut(idx, _quota(len(idx), fractions)), strict=True):
            for i in part:
                sides[i] = side
    return sides


def stratified_grouped(
    labels: Sequence[str], groups: Sequence[str], fractions: Sequence[float], seed: int
) -> list[str]:
    """Whole groups (source cells) go to one side; per class, sides get close to the fractions."""
    names = side_names(fractions)
    rng = np.random.default_rng(seed)
    side_of_group: dict[str, str] = {}
    for idx in _by_class(labels).values():
        members = _group_members(idx, groups)
        order = sorted(members, key=lambda g: (-len(members[g]), rng.random()))
        target = np.asarray(fractions, float) * len(idx)
        filled = np.zeros(len(names))
        for g in order:  # the side furthest below its share, relative to that share
            k = int(np.argmax((target - filled) / np.maximum(target, 1e-9) + target * 1e-9))
            side_of_group[g] = names[k]
            filled[k] += len(members[g])
    _check_group_classes(labels, groups)
    return [side_of_group[g] for g in groups]


def kfold(
    labels: Sequence[str], k: int, seed: int, groups: Sequence[str] | None = None
) -> list[str]:
    """fold0…fold{k-1}: stratified by class; with `groups`, whole groups per fold."""
    if k < 2:
        raise DataError(f"K-fold needs k >= 2, got {k}")
    fractions = [1.0 / k] * k
    names = [f"fold{i}" for i in range(k)]
    rng = np.random.default_rng(seed)
    sides = [""] * len(labels)
    for idx in _by_class(labels).values():
        if groups is None:
            idx = rng.permutation(idx)
            for name, part in zip(names, _cut(idx, _quota(len(idx), fractions)), strict=True):
                for i in part:
                    sides[i] = name
            continue
        members = _group_members(idx, groups)
        filled = np.zeros(k)
        for g in sorted(members, key=lambda g: (-len(members[g]), rng.random())):
            f = int(np.argmin(filled + rng.random(k) * 1e-6))
            filled[f] += len(members[g])
            for i in members[g]:
                sides[i] = names[f]
    if groups is not None:
        _check_group_classes(labels, groups)
    return sides


def from_folders(records: Sequence[ImageRecord]) -> list[str]:
    """The split folders as given (TRAIN → train, TEST → test, …)."""
    if any(r.split is None for r in records):
        raise DataError("this data has no split folders; choose a random or grouped split")
    return [r.split.lower() for r in records]  # type: ignore[union-attr]


def make_sides(
    kind: str,
    records: Sequence[ImageRecord],
    groups: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    folds: int = 0,
) -> list[str]:
    """The side of every record: `kind` random, grouped (whole source cells) or folders;
    `folds` > 1 makes K folds instead (of whole source cells when `kind` is grouped)."""
    labels = [r.label for r in records]
    if folds:
        return kfold(labels, folds, seed, groups if kind == "grouped" else None)
    if kind == "grouped":
        return stratified_grouped(labels, groups, fractions, seed)
    if kind == "random":
        return stratified_random(labels, fractions, seed)
    if kind == "folders":
        return from_folders(records)
    raise DataError(f"unknown split kind {kind!r} (random, grouped, folders)")


def group_overlap(groups: Sequence[str], sides: Sequence[str]) -> set[str]:
    """Groups found on more than one side (empty for an honest grouped split)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for g, s in zip(groups, sides, strict=True):
        seen[g].add(s)
    return {g for g, s in seen.items() if len(s) > 1}


def write_manifest(
    path: Path, records: Sequence[ImageRecord], groups: Sequence[str], sides: Sequence[str]
) -> None:
    """CSV with one row per image: path, class, group, side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for r, g, s in zip(records, groups, sides, strict=True):
            w.writerow([r.path.as_posix(), r.label, g, s])


def read_manifest(path: Path) -> list[ManifestRow]:
    """Rows of a manifest; DataError naming the file on a bad header or row."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = tuple(next(reader, ()))
            if header != MANIFEST_COLUMNS:
                raise DataError(f"header must be {','.join(MANIFEST_COLUMNS)}", path)
            rows = [ManifestRow(*row) for row in reader if row]
    except OSError as exc:
        raise DataError(exc.strerror or "cannot read", path) from None
    except TypeError:
        raise DataError("every row needs 4 columns", path) from None
    return rows


def summarise(labels: Sequence[str], sides: Sequence[str]) -> dict[str, dict[str, int]]:
    """Counts per side and class."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c, s in zip(labels, sides, strict=True):
        out[s][c] += 1
    return {s: dict(v) for s, v in sorted(out.items())}


def _by_class(labels: Sequence[str]) -> dict[str, np.ndarray]:
    idx: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(labels):
        idx[c].append(i)
    return {c: np.asarray(v) for c, v in sorted(idx.items())}


def _group_members(idx: np.ndarray, groups: Sequence[str]) -> dict[str, list[int]]:
    members: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        members[groups[i]].append(int(i))
    return dict(sorted(members.items()))


def _quota(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder counts summing to n."""
    exact = np.asarray(fractions, float) * n
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return counts.tolist()


def _cut(idx: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    return np.split(idx, np.cumsum(counts)[:-1])


def _check_group_classes(labels: Sequence[str], groups: Sequence[str]) -> None:
    cls: dict[str, str] = {}
    for c, g in zip(labels, groups, strict=True):
        if cls.setdefault(g, c) != c:
            raise DataError(f"group {g!r} holds images of two classes ({cls[g]}, {c})")
