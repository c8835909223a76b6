"""Recover the source cells behind augmented copies (Kaggle "Blood Cell Images" TRAIN).

The Kaggle files are rotated, flipped, shifted and zoomed copies of a few source cells. Two
copies of one cell are related by one similarity transform (after an optional mirror) with many
matching keypoints; two different cells are not. Recipe, within each class, one module a step:

1. `sift_features`: SIFT once per image, with near-black rotation corners masked out;
   descriptors as RootSIFT. The mirror image's features are derived, not recomputed.
2. `embedding`: a cheap flip/rotation-invariant embedding (bag of SIFT words of image + mirror,
   tf-idf) and its nearest neighbours as candidate pairs.
3. `pair_verify`: each candidate pair verified on the image and on its mirror: ratio test,
   RANSAC similarity transform, inliers counted. `class_groups` joins pairs with at least
   `min_inliers` with union-find (pairs already joined are skipped).
4. `class_groups`, bridging: each image's nearest images outside its component are verified
   too, so two source images of one physical cell end up in one group (a grouped split must
   keep them together).
5. `class_groups`: small leftover components joined to the large group they match best.

`min_inliers` must sit above a negative control (`cross_class`): random pairs of images of
different classes, verified the same way. A control pair can still be one cell filed under two
classes; such group pairs (and others found through the embedding) are confirmed on several
representative pairs, reported in `GroupingResult.cross_class` and left out of the control's
`max_chance`. `worker_pool` runs steps 1 and 3 in processes; the result is written by
`cell_groups.write_groups_csv` and drawn by `group_montage.write_montage`.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wbc_edge.core.dataset.class_groups import group_class
from wbc_edge.core.dataset.cross_class import across_classes, control_pairs, representatives
from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.sift_features import Features, FeatureStore
from wbc_edge.core.dataset.worker_pool import WorkerPool

log = logging.getLogger(__name__)

_NAME_POSITION = re.compile(r"^_(\d+)_")
_DEFAULT_PARAMS = GroupingParams()


@dataclass
class GroupingResult:
    """One group id per input image, plus the figures that check them."""

    groups: list[str]
    params: GroupingParams
    negative_control: dict
    per_class: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    cross_class: list[dict] = field(default_factory=list)  # groups of two classes that are one cell


def _extract(runner: WorkerPool, paths: Sequence[Path], progress: bool, tag: str) -> FeatureStore:
    feats: list[Features] = []
    step = max(1, len(paths) // 4)
    for i, f in enumerate(runner.features(paths), 1):
        feats.append(f)
        if progress and (i % step == 0 or i == len(paths)):
            log.info("%s: features %d/%d", tag, i, len(paths))
    return FeatureStore.from_features(feats)


def _copy(f: Features) -> Features:
    return f[0].copy(), f[1].copy()


def _name_groups(cls: str, comp: Sequence[int], n_groups: int) -> list[str]:
    width = max(3, len(str(n_groups - 1)))
    return [f"{cls}-{c:0{width}d}" for c in comp]


def recover_groups(
    paths: Sequence[Path],
    labels: Sequence[str],
    params: GroupingParams = _DEFAULT_PARAMS,
    expected_k: Mapping[str, int] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> GroupingResult:
    """Group images into source cells, class by class; ids look like "EOSINOPHIL-007".

    With workers > 1 this spawns processes: call it under `if __name__ == "__main__":`.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    start = time.perf_counter()
    control = control_pairs(labels, params.control_pairs, params.seed)
    keep = {i for pair in control for i in pair}
    kept: dict[int, Features] = {}
    reps: dict[str, list[int]] = {}
    groups: list[str] = [""] * len(paths)
    per_class: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory(prefix="wbc-groups-") as tmp,
        WorkerPool(params, workers, Path(tmp)) as runner,
    ):
        for ci, cls in enumerate(sorted(set(labels))):
            t0 = time.perf_counter()
            idx = [i for i, lab in enumerate(labels) if lab == cls]
            store = _extract(runner, [Path(paths[i]) for i in idx], progress, cls)
            comp, stats = group_class(store, params, runner, f"class{ci}")
            names = _name_groups(cls, comp, stats["groups"])
            for i, g in zip(idx, names, strict=True):
                groups[i] = g
            for members in representatives(idx, comp, params.representatives, params.seed):
                reps[groups[members[0]]] = members
            local = {i: k for k, i in enumerate(idx)}
            wanted = keep.union(*(reps[g] for g in set(names)))
            kept.update({i: _copy(store[local[i]]) for i in idx if i in wanted})
            stats["expected_k"] = None if expected_k is None else expected_k.get(cls)
            stats["seconds"] = round(time.perf_counter() - t0, 1)
            per_class[cls] = stats
            if progress:
                log.info("%s: %s", cls, stats)
        nc, cross = across_classes(runner, kept, control, reps, groups, params)
    _log_checks(nc, cross, params, progress)
    seconds = round(time.perf_counter() - start, 1)
    return GroupingResult(groups, params, nc, per_class, seconds, cross)


def _log_checks(nc: dict, cross: list[dict], params: GroupingParams, progress: bool) -> None:
    if nc.get("max_chance", -1) >= params.min_inliers:
        log.warning(
            "negative control reached %s >= min_inliers %d", nc["max_chance"], params.min_inliers
        )
    for d in cross:
        log.warning(
            "one cell filed under two classes: %s (%.0f%% of pairs match)",
            d["groups"],
            100 * d["share"],
        )
    if progress:
        log.info("negative control (different-class pairs): %s", nc)


def expected_k_from_names(paths: Sequence[Path], labels: Sequence[str]) -> dict[str, int]:
    """Distinct `_N_` positions per class: the number of source cells (for the check only)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for p, lab in zip(paths, labels, strict=True):
        m = _NAME_POSITION.match(Path(p).name)
        if m:
            seen[lab].add(m.group(1))
    return {lab: len(v) for lab, v in sorted(seen.items())}
