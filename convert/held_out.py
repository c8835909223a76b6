"""Which images parity may call held-out: none whose source cell the model trained or
calibrated on.

Kaggle's files are augmented copies of a few source cells, so a different file name is no
proof of a different cell. An image is *seen* when it is, by (class, file name), a row of the
bundle's split manifest on the train side or a calibration file, when its source cell (the
manifest's group, or a recovered-groups table's: `core/dataset/data/kaggle_train_groups.csv`, the
bundle's own groups CSV, `--groups`) has a copy on the train side or among the calibration
images, or when its bytes equal a training or calibration file's. Seen images are dropped,
counted by reason; the parity report says what was checked and how many were dropped.

With NNCF's accuracy control the kept set is split by source cell into a tuning part (NNCF's
validation) and a gate part (parity), so the gate never judges on the images that tuned it.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.convert.cell_match import REPRESENTATIVES, Cell, copies_of_seen_cells
from wbc_edge.core.digest import sha256_file

log = logging.getLogger(__name__)

TUNE_FRACTION = 0.5  # share of the held-out images NNCF's accuracy control validates on

Key = tuple[str, str]  # (class, file name): how the manifest and the groups tables match files


def key_of(label: str, path: str) -> Key:
    return label, Path(path).name


@dataclass
class Seen:
    """What the model has seen, and why: files, source cells and file contents."""

    tables: dict[str, dict[Key, str]] = field(default_factory=dict)  # name -> key -> cell id
    files: dict[Key, str] = field(default_factory=dict)  # key -> "training" | "calibration"
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, cell) -> side
    content: dict[str, str] = field(default_factory=dict)  # sha256 of the bytes -> side
    checked: list[str] = field(default_factory=list)  # what was compared, in words
    training_known: bool = False  # the training side is known (a split manifest)
    reps: dict[Cell, tuple[str, list[Path]]] = field(default_factory=dict)  # for the pixels

    @property
    def known(self) -> bool:
        """True when anything the model saw is known (else nothing can be checked)."""
        return bool(self.files)

    def add(self, side: str, rows: Iterable[tuple[str, str]], root: Path | None) -> int:
        """Record (label, path) images of one side; `root` (when the files are here) adds
        their contents. Returns how many."""
        n = 0
        for label, path in rows:
            key = key_of(label, path)
            self.files.setdefault(key, side)
            for cell in self.cells_of(key):
                self.cells.setdefault(cell, side)
            if root is not None:
                digest = file_digest(root / path)
                if digest is not None:
                    self.content.setdefault(digest, side)
                cell = (label, self.group_of(label, path))
                _, paths = self.reps.setdefault(cell, (side, []))
                if len(paths) < REPRESENTATIVES:
                    paths.append(root / path)
            n += 1
        return n

    def cells_of(self, key: Key) -> list[tuple[str, str]]:
        """(table, cell id) of this file, one per table that knows it."""
        return [(name, t[key]) for name, t in self.tables.items() if key in t]

    def group_of(self, label: str, path: str) -> str:
        """One source-cell id for splitting (the first table's that knows it, else the file)."""
        cells = self.cells_of(key_of(label, path))
        return ":".join(cells[0]) if cells else f"file:{label}/{path}"

    def why_seen(self, label: str, path: str, root: Path) -> str | None:
        """Why this image is not held-out (None when it is, as far as can be told)."""
        key = key_of(label, path)
        if key in self.files:
            return f"{self.files[key]} image (same class and file name)"
        for cell in self.cells_of(key):
            if cell in self.cells:
                return f"another copy of a {self.cells[cell]} source cell (by {cell[0]})"
        if self.content:
            digest = file_digest(root / path)
            if digest in self.content:
                return f"same bytes as a {self.content[digest]} image"
        return None


@dataclass
class Selection:
    """How the parity set was chosen: candidates, kept, dropped per reason, unknown cells."""

    how: str
    candidates: int
    kept: int
    dropped: dict[str, int]
    unknown_cells: int  # kept images that no manifest or groups table knows
    checked: list[str]
    training_checked: bool  # False: no split manifest, so "held-out" cannot be claimed
    tuning: dict[str, Any] | None = None  # set when accuracy control took a part

    def to_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "unknown_source_cell": self.unknown_cells,
            "checked_against": list(self.checked),
            "training_checked": self.training_checked,
            "tuning": self.tuning,
        }

    def describe(self) -> str:
        """One sentence for the reports and the CLI."""
        parts = [self.how]
        if self.checked:
            dropped = sum(self.dropped.values())
            reasons = "; ".join(f"{n} {why}" for why, n in self.dropped.items())
            parts.append(
                f"checked against {', '.join(self.checked)}: {dropped} of {self.candidates} "
                f"dropped as seen in training or calibration" + (f" ({reasons})" if dropped else "")
            )
        if not self.training_checked:
            parts.append("NOT checked against the training images (no split manifest)")
        if self.unknown_cells:
            parts.append(f"{self.unknown_cells} kept image(s) have no known source cell")
        if self.tuning:
            parts.append(
                f"{self.tuning['n']} further image(s) of {self.tuning['cells']} other source "
                "cells tuned NNCF's accuracy control and are not in this set"
            )
        return "; ".join(parts)


def drop_seen(rows: Sequence[Any], seen: Seen, root: Path, how: str) -> tuple[list[Any], Selection]:
    """Rows (with .label, .path) minus the seen ones, and the Selection that says so. Rows no
    table knows are compared by their pixels with the seen cells' representatives."""
    kept, dropped = [], Counter()
    for row in rows:
        why = seen.why_seen(row.label, row.path, root) if seen.known else None
        if why is not None:
            dropped[why] += 1
        else:
            kept.append(row)
    checked = list(seen.checked)
    unknown = [r for r in kept if not seen.cells_of(key_of(r.label, r.path))]
    if unknown and seen.reps:
        copies = copies_of_seen_cells(unknown, root, seen.reps)
        dropped.update(copies.values())
        kept = [r for r in kept if r.path not in copies]
        unknown = [r for r in unknown if r.path not in copies]
        checked.append(f"files no table knows by their pixels against {len(seen.reps)} seen cells")
    if dropped:
        log.warning(
            "parity set: dropped %d of %d images seen in training or calibration (%s)",
            sum(dropped.values()),
            len(rows),
            "; ".join(f"{n} {why}" for why, n in dropped.items()),
        )
    selection = Selection(
        how, len(rows), len(kept), dict(dropped), len(unknown), checked, seen.training_known
    )
    return kept, selection


def split_by_cell(
    labels: Sequence[int], groups: Sequence[str], fraction: float = TUNE_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(tune, gate) indices: whole source cells to one part, classes spread over both.

    Groups are dealt per class, largest first, each to the part furthest below its share; a
    class with one cell goes to the gate part first. Either part may lack a class.
    """
    rng = np.random.default_rng(seed)
    members: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (label, group) in enumerate(zip(labels, groups, strict=True)):
        members[int(label)][group].append(i)
    target = np.array([1.0 - fraction, fraction]) * len(labels)  # gate, tune
    filled = np.zeros(2)
    parts: list[list[int]] = [[], []]
    for label in sorted(members):
        cells = members[label]
        for group in sorted(cells, key=lambda g: (-len(cells[g]), rng.random())):
            k = int(np.argmax((target - filled) / np.maximum(target, 1e-9)))
            parts[k] += cells[group]
            filled[k] += len(cells[group])
    return np.array(sorted(parts[1]), np.int64), np.array(sorted(parts[0]), np.int64)


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (None when it cannot be read)."""
    try:
        return sha256_file(path)
    except OSError:
        return None
