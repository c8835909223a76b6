"""Candidate pairs before verification: a flip/rotation-invariant embedding of each image (a
tf-idf bag of SIFT words of image + mirror) and its nearest neighbours."""

from __future__ import annotations

import cv2
import numpy as np

from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.sift_features import MIRROR_BINS, FeatureStore


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
