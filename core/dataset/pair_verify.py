"""Are two images copies of one cell? Ratio-test matches, one RANSAC similarity transform
(after an optional mirror), and its inlier count."""

from __future__ import annotations

import cv2
import numpy as np

from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.sift_features import Features, mirrored


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
