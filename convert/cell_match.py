"""Source cells from the pixels, for parity images that no manifest or groups table knows.

A new file name proves nothing on Kaggle-like data (augmented copies of a few cells), so each
such image is compared with a few representatives of every seen (training or calibration) cell
of its class, with the recipe that recovered Kaggle's groups (`core/dataset/grouping.py`: SIFT,
ratio test, RANSAC similarity, mirror included); `min_inliers` matching keypoints make it a
copy of that cell.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPRESENTATIVES = 3  # images kept per seen cell to compare with

Cell = tuple[str, str]  # (class, cell id)


def copies_of_seen_cells(
    rows: Sequence[Any], root: Path, reps: Mapping[Cell, tuple[str, list[Path]]]
) -> dict[str, str]:
    """path -> why, for the rows (with .label, .path) that are copies of a seen cell."""
    from wbc_edge.core.dataset.grouping_params import GroupingParams
    from wbc_edge.core.dataset.pair_verify import pair_inliers
    from wbc_edge.core.dataset.sift_features import image_features

    params = GroupingParams()
    cache: dict[Path, Any] = {}

    def features(path: Path) -> Any:
        if path not in cache:
            try:
                cache[path] = image_features(path, params)
            except ValueError:  # unreadable: never a match
                cache[path] = None
        return cache[path]

    found: dict[str, str] = {}
    for row in rows:
        mine = features(root / row.path)
        if mine is None:
            continue
        for (label, _), (side, paths) in reps.items():
            if label != row.label:
                continue
            if any(_same_cell(mine, features(p), params, pair_inliers) for p in paths):
                found[row.path] = f"another copy of a {side} source cell (by its pixels)"
                break
    log.info("pixel check: %d of %d unknown images are copies of seen cells", len(found), len(rows))
    return found


def _same_cell(mine: Any, theirs: Any, params: Any, pair_inliers: Any) -> bool:
    if theirs is None:
        return False
    return pair_inliers(mine, theirs, params, stop_at=params.min_inliers) >= params.min_inliers
