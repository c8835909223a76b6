"""The fingerprint of one image for source-cell recovery: SIFT keypoints with RootSIFT
descriptors, near-black rotation corners masked out, and the mirror image's features derived
(x negated, the descriptor's bins permuted: within ~5 % of SIFT run on the flipped image);
`FeatureStore` keeps one class's features as flat arrays that workers memory-map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.dataset.grouping_params import GroupingParams

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


def gray_features(gray: np.ndarray, params: GroupingParams) -> Features:
    """Keypoints and RootSIFT descriptors (unit L2 norm) of one grey image, corners masked."""
    mask = valid_mask(gray, params.black_level, params.mask_erode)
    kps, desc = _sift(params).detectAndCompute(gray, mask)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float16)
    desc = np.sqrt(desc / (desc.sum(axis=1, keepdims=True) + 1e-7))
    return np.array([k.pt for k in kps], np.float32), desc.astype(np.float16)


def image_features(path: Path, params: GroupingParams) -> Features:
    """SIFT keypoints and RootSIFT descriptors of one image file."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError(f"{path}: cannot decode image")
    return gray_features(gray, params)


def mirrored(f: Features) -> Features:
    """Features of the horizontally mirrored image (up to a shift, which RANSAC absorbs)."""
    pts, desc = f
    return pts * np.array([-1.0, 1.0], np.float32), desc[:, MIRROR_BINS]


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
