"""The source cells of one class: verified pairs joined with union-find, components bridged
(two source images of one cell) and small leftovers joined to their best large match."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from wbc_edge.core.dataset.embedding import embed, nearest
from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.sift_features import FeatureStore
from wbc_edge.core.dataset.worker_pool import WorkerPool
from wbc_edge.core.union_find import UnionFind

log = logging.getLogger(__name__)


def _link_candidates(
    runner: WorkerPool, uf: UnionFind, nn: np.ndarray, params: GroupingParams
) -> int:
    """Verify nearest-neighbour pairs rank by rank, skipping pairs already in one component."""
    tested: set[tuple[int, int]] = set()
    for rank in range(nn.shape[1]):
        pairs = []
        for i, j in enumerate(nn[:, rank].tolist()):
            key = (min(i, j), max(i, j))
            if key not in tested and uf.find(i) != uf.find(j):
                tested.add(key)
                pairs.append(key)
        for (i, j), k in zip(pairs, runner.verify(pairs, params.min_inliers), strict=True):
            if k >= params.min_inliers:
                uf.union(i, j)
        log.debug("rank %d: %d pairs verified", rank + 1, len(pairs))
    return len(tested)


def _bridge_components(
    runner: WorkerPool, uf: UnionFind, emb: np.ndarray, params: GroupingParams
) -> int:
    """Link components that show one cell from two source images (whose copies match each other
    less well than their own): each image's nearest images outside its component are verified,
    round after round, until a round links nothing. Returns the number of links."""
    sim = emb @ emb.T
    k = min(params.bridge_neighbours, len(emb) - 1)
    tested: set[tuple[int, int]] = set()
    links = 0
    for _ in range(params.bridge_rounds):
        root_of = np.array([uf.find(i) for i in range(len(emb))])
        outside = np.where(root_of[:, None] == root_of[None, :], -np.inf, sim)
        if k <= 0 or not np.isfinite(outside).any():
            break
        top = np.argpartition(-outside, k - 1, axis=1)[:, :k]
        pairs = sorted(
            {(min(i, j), max(i, j)) for i, row in enumerate(top.tolist()) for j in row} - tested
        )
        pairs = [p for p in pairs if np.isfinite(outside[p])]
        tested.update(pairs)
        new = 0
        for (i, j), n in zip(pairs, runner.verify(pairs, params.min_inliers), strict=True):
            if n >= params.min_inliers and uf.find(i) != uf.find(j):
                uf.union(i, j)
                new += 1
        links += new
        if not new:
            break
    return links


def typical_size(sizes: Iterable[int]) -> float:
    """Median component size as seen by an image (robust to many singletons)."""
    per_image = [s for s in sizes for _ in range(s)]
    return float(np.median(per_image)) if per_image else 0.0


def _join_leftovers(
    runner: WorkerPool, uf: UnionFind, emb: np.ndarray, params: GroupingParams
) -> tuple[int, int]:
    """Join components smaller than leftover_fraction x typical size to their best large match.

    Returns (joined, kept) counts of small components.
    """
    comps = uf.components()
    limit = params.leftover_fraction * typical_size(len(m) for m in comps.values())
    small = [root for root, m in comps.items() if len(m) < limit]
    if not small or len(small) == len(comps):
        return 0, len(small)
    small_set = set(small)
    root_of = np.array([uf.find(i) for i in range(len(emb))])
    eligible = ~np.isin(root_of, list(small_set))
    pairs = []
    for root in small:
        for i in comps[root]:
            sim = emb[eligible] @ emb[i]
            idx = np.flatnonzero(eligible)[np.argsort(-sim)[: params.leftover_neighbours]]
            pairs += [(i, int(j)) for j in idx]
    best: dict[int, tuple[int, int]] = {}
    for (i, j), k in zip(pairs, runner.verify(pairs, None), strict=True):
        src = int(root_of[i])
        if k > best.get(src, (-1, -1))[0]:
            best[src] = (k, int(root_of[j]))
    joined = 0
    for src, (k, dst) in best.items():
        if k >= params.leftover_min_inliers:
            uf.union(src, dst)
            joined += 1
    return joined, len(small) - joined


def _copy_stats(sizes: Sequence[int]) -> dict:
    if not sizes:
        return {"copies_min": 0, "copies_median": 0, "copies_max": 0}
    return {
        "copies_min": int(min(sizes)),
        "copies_median": float(np.median(sizes)),
        "copies_max": int(max(sizes)),
    }


def group_class(
    store: FeatureStore, params: GroupingParams, runner: WorkerPool, name: str
) -> tuple[list[int], dict]:
    """Component index (0..) per image of one class, and figures about them."""
    n = len(store)
    uf = UnionFind(n)
    stats: dict = {"images": n}
    if n > 1:
        emb = embed(store, params)
        nn = nearest(emb, params.neighbours)
        runner.use(store, name)
        stats["pairs_verified"] = _link_candidates(runner, uf, nn, params)
        stats["bridges"] = _bridge_components(runner, uf, emb, params)
        stats["leftovers_joined"], stats["leftovers_kept"] = _join_leftovers(
            runner, uf, emb, params
        )
    roots = sorted(uf.components().items(), key=lambda kv: kv[1][0])
    index_of_root = {root: idx for idx, (root, _) in enumerate(roots)}
    sizes = [len(m) for _, m in roots]
    oversized = sum(s > 1.5 * typical_size(sizes) for s in sizes)
    stats.update({"groups": len(roots), **_copy_stats(sizes), "oversized": oversized})
    return [index_of_root[uf.find(i)] for i in range(n)], stats
