"""Checks across classes: the negative control (random pairs of images of different classes,
verified like any pair) and groups of two classes that are one cell filed twice, confirmed on
several representative pairs and left out of the control's `max_chance`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from wbc_edge.core.dataset.embedding import embed
from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.sift_features import Features, FeatureStore
from wbc_edge.core.dataset.worker_pool import WorkerPool


def control_pairs(labels: Sequence[str], n: int, seed: int) -> list[tuple[int, int]]:
    """Random pairs of images with different labels."""
    lab = np.asarray(labels)
    if len(set(labels)) < 2 or n <= 0:
        return []
    rng = np.random.default_rng([seed, 7])
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n:
        a, b = rng.integers(0, len(labels), (2, n))
        pairs += [(int(i), int(j)) for i, j in zip(a, b, strict=True) if lab[i] != lab[j]]
    return pairs[:n]


def control_summary(inliers: Sequence[int], same_cell: Sequence[bool] | None = None) -> dict:
    """Max and upper percentiles of negative-control inliers; `max_chance` leaves out pairs
    whose groups were confirmed to be one cell filed under two classes."""
    if not len(inliers):
        return {"pairs": 0}
    v = np.asarray(inliers)
    same = np.zeros(len(v), bool) if same_cell is None else np.asarray(same_cell, bool)
    return {
        "pairs": len(v),
        "max": int(v.max()),
        "p99": float(np.percentile(v, 99)),
        "p999": float(np.percentile(v, 99.9)),
        "median": float(np.median(v)),
        "same_cell_pairs": int(same.sum()),
        "max_chance": int(v[~same].max()) if (~same).any() else 0,
    }


def representatives(idx: Sequence[int], comp: Sequence[int], n: int, seed: int) -> list[list[int]]:
    """Up to n random members (global indices) of each component of one class."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in zip(idx, comp, strict=True):
        members[c].append(i)
    rng = np.random.default_rng([seed, 11])
    return [sorted(rng.permutation(members[c])[:n].tolist()) for c in sorted(members)]


def _cross_candidates(
    runner: WorkerPool, store: FeatureStore, reps: Sequence[tuple[str, int]], params: GroupingParams
) -> set[tuple[str, str]]:
    """Group pairs of different classes whose representatives (group, store position) are
    embedding neighbours and pass verification."""
    if len({g.rsplit("-", 1)[0] for g, _ in reps}) < 2:
        return set()
    emb = embed(FeatureStore.from_features([store[k] for _, k in reps]), params)
    cls = np.array([g.rsplit("-", 1)[0] for g, _ in reps])
    sim = np.where(cls[:, None] == cls[None, :], -np.inf, emb @ emb.T)
    k = min(params.cross_neighbours, int(np.isfinite(sim).sum(axis=1).min()))
    if k <= 0:
        return set()
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    pairs = sorted({(min(a, b), max(a, b)) for a, row in enumerate(top.tolist()) for b in row})
    found = runner.verify([(reps[a][1], reps[b][1]) for a, b in pairs], params.min_inliers)
    return {
        tuple(sorted((reps[a][0], reps[b][0])))  # type: ignore[misc]
        for (a, b), n in zip(pairs, found, strict=True)
        if n >= params.min_inliers
    }


def _same_cell_fraction(
    runner: WorkerPool, a: Sequence[int], b: Sequence[int], params: GroupingParams
) -> float:
    """Share of representative pairs (store positions) of two groups that pass verification."""
    found = runner.verify([(i, j) for i in a for j in b], params.min_inliers)
    return float(np.mean(np.asarray(found) >= params.min_inliers)) if found else 0.0


def across_classes(
    runner: WorkerPool,
    feats: Mapping[int, Features],
    control: Sequence[tuple[int, int]],
    reps: Mapping[str, Sequence[int]],
    groups: Sequence[str],
    params: GroupingParams,
) -> tuple[dict, list[dict]]:
    """Negative control on random different-class pairs, and groups of different classes that
    are one cell (candidates from the control and from embedding neighbours, each confirmed by
    the share of its representative pairs that verify)."""
    pos = {i: k for k, i in enumerate(sorted(feats))}
    store = FeatureStore.from_features([feats[i] for i in sorted(feats)])
    runner.use(store, "across")
    found = runner.verify([(pos[a], pos[b]) for a, b in control], None)
    candidates = {
        tuple(sorted((groups[a], groups[b])))
        for (a, b), n in zip(control, found, strict=True)
        if n >= params.min_inliers
    }
    rep_list = [(g, pos[i]) for g, members in sorted(reps.items()) for i in members]
    candidates |= _cross_candidates(runner, store, rep_list, params)
    same: list[dict] = []
    for ga, gb in sorted(candidates):
        share = _same_cell_fraction(
            runner, [pos[i] for i in reps[ga]], [pos[i] for i in reps[gb]], params
        )
        if share >= params.same_cell_share:
            same.append({"groups": [ga, gb], "share": round(share, 2)})
    confirmed = {tuple(d["groups"]) for d in same}
    flags = [tuple(sorted((groups[a], groups[b]))) in confirmed for a, b in control]
    return control_summary(found, flags), same
