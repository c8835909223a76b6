"""What training data must hold before a model is fitted: two classes, and every class on every
side of the split (a class with one source cell cannot be validated or tested). No TensorFlow,
so `wbc-train` refuses a one-class folder at once.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.errors import DataError

log = logging.getLogger(__name__)

MIN_CLASSES = 2
COMPUTED_KINDS = ("grouped", "random")  # splits made here; folders and manifests are given


def check_classes(images: ImageSet, where: Path | str) -> None:
    """At least MIN_CLASSES classes with images, or one DataError naming what was found."""
    present = [c for c, n in Counter(r.label for r in images.records).items() if n]
    if len(present) < MIN_CLASSES:
        found = ", ".join(sorted(present)) or "none"
        raise DataError(
            f"training needs at least {MIN_CLASSES} classes with usable images, found "
            f"{len(present)} ({found}); give a folder of class folders (<root>/<CLASS>/*.jpg)",
            where,
        )


def check_split(
    labels: Sequence[str],
    groups: Sequence[str],
    sides: Sequence[str],
    name: str,
    kind: str,
    where: Path | str,
) -> None:
    """Every class must reach every side of the split; raise DataError (computed splits) or
    warn (split folders, manifests: the user chose them) naming the class and its cells."""
    all_sides = sorted(set(sides))
    on: dict[str, set[str]] = defaultdict(set)
    cells: dict[str, set[str]] = defaultdict(set)
    images: Counter[str] = Counter()
    for label, group, side in zip(labels, groups, sides, strict=True):
        on[label].add(side)
        cells[label].add(group)
        images[label] += 1
    for label in sorted(on):
        missing = [s for s in all_sides if s not in on[label]]
        if not missing:
            continue
        message = (
            f"class {label} ({len(cells[label])} source cells, {images[label]} images) gets no "
            f"{', '.join(missing)} images in the {name} split: each of its {len(all_sides)} "
            "sides needs at least one source cell of every class; add images of this class, "
            "or ask for fewer sides (e.g. --fractions 70/30 or a smaller --kfold)"
        )
        if kind.split("-")[0] in COMPUTED_KINDS:
            raise DataError(message, where)
        log.warning("%s: %s", where, message)
