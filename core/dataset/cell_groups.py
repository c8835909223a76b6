"""Which source cell each image came from: from a groups CSV, the shipped Kaggle TRAIN table,
or (with a warning) one group per file; and the groups CSV itself (`path,class,group`)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.errors import DataError, first_line

log = logging.getLogger(__name__)

SHIPPED_KAGGLE_TRAIN = "kaggle_train_groups.csv"
CSV_COLUMNS = ("path", "class", "group")


def shipped_groups_path() -> Path:
    """The recovered source cells of Kaggle TRAIN, shipped as package data."""
    return Path(str(resources.files(__package__) / "data" / SHIPPED_KAGGLE_TRAIN))


def resolve_groups(image_set: ImageSet, groups_csv: Path | None = None) -> tuple[list[str], str]:
    """One group per record and where they came from.

    With `groups_csv`, every image must be in it. Without, the shipped Kaggle TRAIN table is
    used if it knows the images; files it does not know become groups of one, with a warning.
    """
    if groups_csv is not None:
        table = _read(groups_csv)
        missing = [r for r in image_set.records if _key(r) not in table]
        if missing:
            raise DataError(
                f"{len(missing)} images are not in it, e.g. {missing[0].path.as_posix()}",
                groups_csv,
            )
        return [table[_key(r)] for r in image_set.records], str(groups_csv)
    table = _read(shipped_groups_path())
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


def _read(path: Path) -> dict[tuple[str, str], str]:
    try:
        return read_groups_csv(path)
    except OSError as exc:
        raise DataError(first_line(exc), path) from None


def write_groups_csv(
    path: Path, root: Path, paths: Sequence[Path], labels: Sequence[str], groups: Sequence[str]
) -> None:
    """Write path (relative to root, posix),class,group."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for p, lab, g in zip(paths, labels, groups, strict=True):
            w.writerow([Path(p).relative_to(root).as_posix(), lab, g])


def read_groups_csv(path: Path) -> dict[tuple[str, str], str]:
    """(class, file name) -> group, from a CSV written by `write_groups_csv`."""
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise DataError(f"expected columns {','.join(CSV_COLUMNS)}, got {header}", path)
        table: dict[tuple[str, str], str] = {}
        for line, row in enumerate(reader, 2):
            if len(row) != 3 or not all(row):
                raise DataError(f"line {line}: expected 3 non-empty fields, got {row}", path)
            table[(row[1], Path(row[0]).name)] = row[2]
    return table
