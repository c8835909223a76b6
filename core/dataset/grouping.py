"""Recover the source cells behind augmented copies (Kaggle "Blood Cell Images" TRAIN).

The Kaggle files are rotated, flipped, shifted and zoomed copies of a few source cells. Two
copies of one cell are related by one similarity transform (after an optional mirror) with many
matching keypoints; two different cells are not. Recipe, within each class:

1. SIFT once per image, with near-black rotation corners masked out; descriptors as RootSIFT.
   The mirror image's features are derived, not recomputed: x negated and the descriptor's bins
   permuted (within ~5 % of SIFT run on the flipped image).
2. A cheap flip/rotation-invariant embedding (bag of SIFT words of image + mirror, tf-idf) and its
   nearest neighbours as candidate pairs.
3. Each candidate pair verified on the image and on its mirror: ratio test, RANSAC similarity
   transform, inliers counted; pairs with at least `min_inliers` are joined with union-find
   (pairs already joined are skipped).
4. Bridging: each image's nearest images outside its component are verified too, so two source
   images of one physical cell end up in one group (a grouped split must keep them together).
5. Small leftover components joined to the large group they match best.

`min_inliers` must sit above a negative control: random pairs of images of different classes,
verified the same way. A control pair can still be one cell filed under two classes; such group
pairs (and others found through the embedding) are confirmed on several representative pairs,
reported in `GroupingResult.cross_class` and left out of the control's `max_chance`.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing as mp
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.errors import DataError
from wbc_edge.core.union_find import UnionFind

log = logging.getLogger(__name__)

CSV_COLUMNS = ("path", "class", "group")
_NAME_POSITION = re.compile(r"^_(\d+)_")


@dataclass(frozen=True)
class GroupingParams:
    """Knobs of the recipe; defaults measured on Kaggle TRAIN (see docs/grouping.md)."""

    neighbours: int = 10  # candidate pairs per image from the embedding
    ratio: float = 0.75  # Lowe ratio test
    min_inliers: int = 12  # RANSAC inliers to accept a pair; above the negative control's max
    max_features: int = 500  # strongest SIFT keypoints kept per image
    contrast_threshold: float = 0.02  # SIFT contrast threshold (OpenCV default 0.04)
    ransac_threshold: float = 3.0  # reprojection error in pixels
    ransac_iters: int = 1000
    max_scale: float = 2.0  # reject transforms that zoom by more than this (or 1/this)
    black_level: int = 20  # grey values at or below this are rotation corners
    mask_erode: int = 7  # erode the valid-pixel mask by this kernel size
    vocabulary: int = 256  # visual words of the embedding
    bridge_neighbours: int = 2  # per image and round: nearest images outside its component
    bridge_rounds: int = 3  # rounds of bridging (stops early when a round links nothing)
    leftover_fraction: float = 0.5  # components smaller than this x typical copy count are joined
    leftover_neighbours: int = 40  # candidates per leftover image outside its component
    leftover_min_inliers: int = 10  # best match needed to join a leftover component
    control_pairs: int = 5000  # random different-class pairs in the negative control
    representatives: int = 4  # images per group kept for the checks across classes
    cross_neighbours: int = 3  # per representative: embedding neighbours of other classes
    same_cell_share: float = 0.25  # share of representative pairs that must match: one cell
    seed: int = 0


@dataclass
class GroupingResult:
    """One group id per input image, plus the figures that check them."""

    groups: list[str]
    params: GroupingParams
    negative_control: dict
    per_class: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    cross_class: list[dict] = field(default_factory=list)  # groups of two classes that are one cell


# --------------------------------------------------------------------------- features

Features = tuple[np.ndarray, np.ndarray]  # keypoint xy (n, 2) float32, RootSIFT (n, 128) float16

# SIFT's descriptor is 4x4 spatial bins x 8 orientation bins in the keypoint's frame. Mirroring
# the image (with the keypoint angle mirrored) flips the spatial rows and negates orientations.
MIRROR_BINS = np.arange(128).reshape(4, 4, 8)[::-1][..., (-np.arange(8)) % 8].reshape(-1)


def valid_mask(gray: np.ndarray, black_level: int, erode: int) -> np.ndarray:
    """255 where the pixel is image content, 0 on (eroded) near-black rotation corners."""
    mask = np.where(gray > black_level, 255, 0).astype(np.uint8)
    if erode > 1:
        mask = cv2.erode(mask, np.ones((erode, erode), np.uint8))
    return mask


def _sift(params: GroupingParams) -> cv2.SIFT:
    return cv2.SIFT_create(
        nfeatures=params.max_features, contrastThreshold=params.contrast_threshold
    )


def _describe(sift: cv2.SIFT, gray: np.ndarray, mask: np.ndarray) -> Features:
    """Keypoints and RootSIFT descriptors (unit L2 norm) of one grey image."""
    kps, desc = sift.detectAndCompute(gray, mask)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float16)
    desc = np.sqrt(desc / (desc.sum(axis=1, keepdims=True) + 1e-7))
    return np.array([k.pt for k in kps], np.float32), desc.astype(np.float16)


def image_features(path: Path, params: GroupingParams) -> Features:
    """SIFT keypoints and RootSIFT descriptors of one image file."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError(f"{path}: cannot decode image")
    return _describe(_sift(params), gray, valid_mask(gray, params.black_level, params.mask_erode))


def mirrored(f: Features) -> Features:
    """Features of the horizontally mirrored image (up to a shift, which RANSAC absorbs)."""
    pts, desc = f
    return pts * np.array([-1.0, 1.0], np.float32), desc[:, MIRROR_BINS]


# --------------------------------------------------------------------------- pair verification


def ratio_matches(a: np.ndarray, b: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ia, ib) of matches from a to b that pass Lowe's ratio test (unit descriptors)."""
    if len(a) < 1 or len(b) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    # cv2.gemm, not numpy: threaded BLAS can be ~100x slower on these small products when busy
    sim = cv2.gemm(a.astype(np.float32), b.astype(np.float32), 1.0, None, 0.0, flags=cv2.GEMM_2_T)
    rows = np.arange(len(a))
    best = sim.argmax(axis=1)
    s1 = sim[rows, best]
    sim[rows, best] = -2.0
    s2 = sim.max(axis=1)
    # squared distance of unit vectors: 2 - 2 * cosine
    keep = (2.0 - 2.0 * s1) < ratio * ratio * (2.0 - 2.0 * s2)
    return rows[keep], best[keep]


def similarity_inliers(fa: Features, fb: Features, params: GroupingParams) -> int:
    """RANSAC inliers of one similarity transform from a's keypoints to b's."""
    ia, ib = ratio_matches(fa[1], fb[1], params.ratio)
    if len(ia) < 3:
        return 0
    matrix, inliers = cv2.estimateAffinePartial2D(
        fa[0][ia],
        fb[0][ib],
        method=cv2.RANSAC,
        ransacReprojThreshold=params.ransac_threshold,
        maxIters=params.ransac_iters,
    )
    if matrix is None or inliers is None:
        return 0
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if not 1.0 / params.max_scale <= scale <= params.max_scale:
        return 0
    return int(inliers.sum())


def pair_inliers(
    a: Features, b: Features, params: GroupingParams, stop_at: int | None = None
) -> int:
    """Best inliers of a -> b and mirror(a) -> b; the mirror is skipped once `stop_at` is met."""
    direct = similarity_inliers(a, b, params)
    if stop_at is not None and direct >= stop_at:
        return direct
    return max(direct, similarity_inliers(mirrored(a), b, params))


# --------------------------------------------------------------------------- feature store, pool


class FeatureStore:
    """Features of one class as flat arrays; saved as .npy so workers can memory-map them."""

    def __init__(self, pts: np.ndarray, desc: np.ndarray, offsets: np.ndarray):
        self.pts, self.desc, self.offsets = pts, desc, offsets

    @classmethod
    def from_features(cls, feats: Sequence[Features]) -> FeatureStore:
        offsets = np.concatenate([[0], np.cumsum([len(p) for p, _ in feats])]).astype(np.int64)
        pts = np.concatenate([np.zeros((0, 2), np.float32), *(p for p, _ in feats)])
        desc = np.concatenate([np.zeros((0, 128), np.float16), *(d for _, d in feats)])
        return cls(pts.astype(np.float32), desc.astype(np.float16), offsets)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("pts", "desc", "offsets"):
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> FeatureStore:
        names = ("pts", "desc", "offsets")
        return cls(*(np.load(folder / f"{n}.npy", mmap_mode="r") for n in names))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Features:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.pts[a:b]), np.asarray(self.desc[a:b])


_WORKER: dict[str, object] = {}


def _init_worker(params: GroupingParams, threads: int | None) -> None:
    if threads is not None:
        cv2.setNumThreads(threads)
    _WORKER.clear()
    _WORKER["params"] = params


def _use_store(key: str, store: FeatureStore | None = None) -> FeatureStore:
    if _WORKER.get("key") != key:
        _WORKER["store"] = store if store is not None else FeatureStore.load(Path(key))
        _WORKER["key"] = key
    return _WORKER["store"]  # type: ignore[return-value]


def _features_task(path: Path) -> Features:
    return image_features(path, _WORKER["params"])  # type: ignore[arg-type]


def _verify_task(task: tuple[str, int, int, int | None]) -> int:
    key, i, j, stop_at = task
    store = _use_store(key)
    return pair_inliers(store[i], store[j], _WORKER["params"], stop_at)  # type: ignore[arg-type]


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (inherited by processes started in it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Runner:
    """Runs feature extraction and pair verification in a spawned process pool (workers > 1,
    features shared through memory-mapped files in `tmp`) or in this process."""

    def __init__(self, params: GroupingParams, workers: int, tmp: Path):
        self.tmp, self.key, self.pool = tmp, "", None
        if workers > 1:
            # spawn, not fork: a forked child can hang on OpenCV's thread pool. One BLAS thread
            # per worker: threaded BLAS stalls on small products when the machine is busy.
            with _environment(dict.fromkeys(_THREAD_VARIABLES, "1")):
                self.pool = mp.get_context("spawn").Pool(workers, _init_worker, (params, 1))
        else:
            self._saved = dict(_WORKER)
            _init_worker(params, None)

    def _map(self, fn, items: Sequence, chunksize: int) -> Iterator:
        if self.pool is None:
            return map(fn, items)
        return self.pool.imap(fn, items, chunksize=max(1, chunksize))

    def features(self, paths: Sequence[Path]) -> Iterator[Features]:
        return self._map(_features_task, list(paths), 16)

    def use(self, store: FeatureStore, name: str) -> None:
        """Make `store` the features that `verify` indexes into."""
        if self.pool is None:
            self.key = name
            _use_store(name, store)
        else:
            folder = self.tmp / name
            store.save(folder)
            self.key = str(folder)

    def verify(self, pairs: Sequence[tuple[int, int]], stop_at: int | None) -> list[int]:
        tasks = [(self.key, i, j, stop_at) for i, j in pairs]
        return list(self._map(_verify_task, tasks, min(64, len(tasks) // 16)))

    def close(self, error: bool = False) -> None:
        if self.pool is not None:
            if error:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
        else:
            _WORKER.clear()
            _WORKER.update(self._saved)

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close(exc[0] is not None)


# --------------------------------------------------------------------------- embedding


def _vocabulary(store: FeatureStore, params: GroupingParams) -> np.ndarray:
    """K-means visual words from a sample of the images' descriptors."""
    rng = np.random.default_rng(params.seed)
    pick = rng.permutation(len(store))[:100]
    desc = np.concatenate([store[int(i)][1] for i in pick]).astype(np.float32)
    k = int(min(params.vocabulary, max(2, len(desc) // 20)))
    if len(desc) < k:
        return desc
    cv2.setRNGSeed(params.seed)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER + cv2.TERM_CRITERIA_EPS, 10, 1e-4)
    _, _, centers = cv2.kmeans(desc, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return centers


def _words(desc: np.ndarray, centers: np.ndarray, chunk: int = 32768) -> np.ndarray:
    """Nearest visual word of each descriptor, in chunks to bound memory."""
    c2 = (centers * centers).sum(axis=1)[None, :]
    out = [
        (c2 - 2.0 * np.asarray(desc[s : s + chunk], np.float32) @ centers.T).argmin(axis=1)
        for s in range(0, len(desc), chunk)
    ]
    return np.concatenate([np.zeros(0, np.int64), *out])


def embed(store: FeatureStore, params: GroupingParams) -> np.ndarray:
    """Unit-norm tf-idf bag of words of image + mirror: invariant to rotation, flip and shift."""
    centers = _vocabulary(store, params)
    if len(centers) == 0:
        return np.zeros((len(store), 1), np.float32)
    image = np.repeat(np.arange(len(store)), np.diff(store.offsets))
    hist = np.zeros((len(store), len(centers)), np.float32)
    for desc in (store.desc, store.desc[:, MIRROR_BINS]):
        np.add.at(hist, (image, _words(desc, centers)), 1.0)
    idf = np.log((len(store) + 1) / ((hist > 0).sum(axis=0) + 1)).astype(np.float32)
    emb = np.sqrt(hist) * idf
    return emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)


def nearest(emb: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k most similar other rows, best first."""
    n = len(emb)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), int)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


# --------------------------------------------------------------------------- one class


def _link_candidates(runner: _Runner, uf: UnionFind, nn: np.ndarray, params: GroupingParams) -> int:
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
    runner: _Runner, uf: UnionFind, emb: np.ndarray, params: GroupingParams
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
    runner: _Runner, uf: UnionFind, emb: np.ndarray, params: GroupingParams
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
    store: FeatureStore, params: GroupingParams, runner: _Runner, name: str
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


# --------------------------------------------------------------------------- across classes


def _control_pairs(labels: Sequence[str], n: int, seed: int) -> list[tuple[int, int]]:
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


def _representatives(idx: Sequence[int], comp: Sequence[int], n: int, seed: int) -> list[list[int]]:
    """Up to n random members (global indices) of each component of one class."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in zip(idx, comp, strict=True):
        members[c].append(i)
    rng = np.random.default_rng([seed, 11])
    return [sorted(rng.permutation(members[c])[:n].tolist()) for c in sorted(members)]


def _cross_candidates(
    runner: _Runner, store: FeatureStore, reps: Sequence[tuple[str, int]], params: GroupingParams
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
    runner: _Runner, a: Sequence[int], b: Sequence[int], params: GroupingParams
) -> float:
    """Share of representative pairs (store positions) of two groups that pass verification."""
    found = runner.verify([(i, j) for i in a for j in b], params.min_inliers)
    return float(np.mean(np.asarray(found) >= params.min_inliers)) if found else 0.0


def _across_classes(
    runner: _Runner,
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


# --------------------------------------------------------------------------- public API


def _extract(runner: _Runner, paths: Sequence[Path], progress: bool, tag: str) -> FeatureStore:
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
    params: GroupingParams = GroupingParams(),
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
    control = _control_pairs(labels, params.control_pairs, params.seed)
    keep = {i for pair in control for i in pair}
    kept: dict[int, Features] = {}
    reps: dict[str, list[int]] = {}
    groups: list[str] = [""] * len(paths)
    per_class: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory(prefix="wbc-groups-") as tmp,
        _Runner(params, workers, Path(tmp)) as runner,
    ):
        for ci, cls in enumerate(sorted(set(labels))):
            t0 = time.perf_counter()
            idx = [i for i, lab in enumerate(labels) if lab == cls]
            store = _extract(runner, [Path(paths[i]) for i in idx], progress, cls)
            comp, stats = group_class(store, params, runner, f"class{ci}")
            names = _name_groups(cls, comp, stats["groups"])
            for i, g in zip(idx, names, strict=True):
                groups[i] = g
            for members in _representatives(idx, comp, params.representatives, params.seed):
                reps[groups[members[0]]] = members
            local = {i: k for k, i in enumerate(idx)}
            wanted = keep.union(*(reps[g] for g in set(names)))
            kept.update({i: _copy(store[local[i]]) for i in idx if i in wanted})
            stats["expected_k"] = None if expected_k is None else expected_k.get(cls)
            stats["seconds"] = round(time.perf_counter() - t0, 1)
            per_class[cls] = stats
            if progress:
                log.info("%s: %s", cls, stats)
        nc, cross = _across_classes(runner, kept, control, reps, groups, params)
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


# --------------------------------------------------------------------------- montage


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
    if not cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"{path}: cannot write PNG")
