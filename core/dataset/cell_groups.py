"""Which source cell each image came from: from a groups CSV, the shipped Kaggle TRAIN table,
or (with a warning) one group per file."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.errors import DataError, first_line

log = logging.getLogger(__name__)

SHIPPED_KAGGLE_TRAIN = "kaggle_train_groups.csv"


def shipped_groups_path() -> Path:
    """The recovered source cells of Kaggle TRAIN, shipped as package data."""
    return Path(str(resources.files(__package__) / "data" / SHIPPED_KAGGLE_TRAIN))


def resolve_groups(image_set: ImageSet, groups_csv: Path | None = None) -> tuple[list[str], str]:
    """One group per record and where they came from.

    With `groups_csv`, every image must be in it. Without, the shipped Kaggle TRAIN table is
    used if it knows the images; files it does not know become groups of one, with a warning.
    """
    from wbc_edge.core.dataset.grouping import read_groups_csv

    if groups_csv is not None:
        table = _read(read_groups_csv, groups_csv)
        missing = [r for r in image_set.records if _key(r) not in table]
        if missing:
            raise DataError(
                f"{len(missing)} images are not in it, e.g. {missing[0].path.as_posix()}",
                groups_csv,
            )
        return [table[_key(r)] for r in image_set.records], str(groups_csv)
    table = _read(read_groups_csv, shipped_groups_path())
    groups = [table.get(_key(r)) for r in image_set.records]
    unknown = sum(g is None for g in groups)
    if unknown:
        log.warning(
            "%d of %d images have no recovered source cell; each becomes its own group, so a "
            "grouped split can leak augmented copies. Run `wbc-train groups` on this data and "
            "pass --groups.",
            unknown,
            len(groups),
        )
    origin = "shipped:" + SHIPPED_KAGGLE_TRAIN if unknown < len(groups) else "one-per-file"
    out = [
        g if g is not None else f"file:{r.path.as_posix()}"
        for g, r in zip(groups, image_set.records, strict=True)
    ]
    return out, origin


def _key(record) -> tuple[str, str]:
    return record.label, record.path.name


def _read(reader, path: Path) -> dict[tuple[str, str], str]:
    try:
        return reader(path)
    except OSError as exc:
        raise DataError(first_line(exc), path) from None
