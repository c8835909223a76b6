"""The montage that shows recovered source cells: one row per group, copies spread over it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.safe_io import write_image


def _pick_groups(groups: Sequence[str], n_groups: int, seed: int) -> list[str]:
    """Up to n_groups groups per class: the largest, then others at random."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for g in sorted(set(groups)):
        by_class[g.rsplit("-", 1)[0]].append(g)
    size = Counter(groups)
    rng = np.random.default_rng(seed)
    picked = []
    for cls in sorted(by_class):
        names = sorted(by_class[cls], key=lambda g: -size[g])  # the largest: a merge shows there
        rest = rng.permutation(len(names) - 1)[: max(0, n_groups - 1)] + 1
        picked += [names[0], *(names[i] for i in sorted(rest))][:n_groups]
    return picked


def _thumb(path: Path, size: tuple[int, int]) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return np.zeros((size[1], size[0], 3), np.uint8)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def write_montage(
    path: Path,
    root: Path,
    paths: Sequence[Path],
    groups: Sequence[str],
    n_groups: int = 6,
    per_group: int = 6,
    thumb: tuple[int, int] = (96, 72),
    seed: int = 0,
) -> None:
    """PNG grid: one row per group (n_groups per class), per_group copies spread over each group,
    labelled with the group id and its copy count."""
    members: dict[str, list[Path]] = defaultdict(list)
    for p, g in zip(paths, groups, strict=True):
        members[g].append(Path(root) / p)
    label_w, (tw, th) = 150, thumb
    rows = []
    for g in _pick_groups(groups, n_groups, seed):
        files = members[g]
        pick = np.unique(np.linspace(0, len(files) - 1, min(per_group, len(files))).astype(int))
        row = np.full((th, label_w + per_group * tw, 3), 255, np.uint8)
        for col, i in enumerate(pick):
            row[:, label_w + col * tw : label_w + (col + 1) * tw] = _thumb(files[i], thumb)
        for line, text in enumerate((g, f"{len(files)} copies")):
            y = th // 2 - 4 + 18 * line
            cv2.putText(
                row, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA
            )
        rows.append(row)
    if not rows:
        raise ValueError("no groups to draw")
    grid = np.vstack([np.vstack([r, np.full((2, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, grid[:, :, ::-1])  # the grid is OpenCV's BGR
