"""The knobs of source-cell recovery (`grouping`), in one dataclass."""

from __future__ import annotations

from dataclasses import dataclass


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
