"""Find white cells by their nuclei: dark violet stain against pink red cells and pale background.

Cell mode (`locate_cell`) and field mode (`find_cells`) share the same stain mask and the
same merging of lobes, so both feed the model the same kind of crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_app.preprocess_spec import NucleusParams


@dataclass(frozen=True)
class Nucleus:
    """One stained nucleus (lobes merged): its centre, box (x0, y0, x1, y1) and stained area."""

    cx: float
    cy: float
    box: tuple[int, int, int, int]
    area: int


def stain_mask(rgb: np.ndarray, params: NucleusParams) -> np.ndarray:
    """uint8 mask (0/1) of nucleus-stained pixels: B - G above threshold and G not pale."""
    g = rgb[:, :, 1].astype(np.int16)
    b = rgb[:, :, 2].astype(np.int16)
    return ((b - g > params.stain_threshold) & (g <= params.max_green)).astype(np.uint8)


def find_nuclei(rgb: np.ndarray, params: NucleusParams, scale: float = 1.0) -> list[Nucleus]:
    """All nuclei in an image, largest first. `scale` = image pixels per training-image pixel."""
    mask = stain_mask(rgb, params)
    mask = _morph(mask, cv2.MORPH_CLOSE, params.close_radius * scale)
    grouped = _morph(mask, cv2.MORPH_DILATE, params.merge_radius * scale)
    n, labels = cv2.connectedComponents(grouped, connectivity=8)
    min_area = params.min_area * scale * scale
    found = []
    for label in range(1, n):
        ys, xs = np.nonzero((labels == label) & (mask > 0))
        if len(xs) < min_area:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        found.append(Nucleus(float(xs.mean()), float(ys.mean()), box, len(xs)))
    return sorted(found, key=lambda nuc: -nuc.area)


def locate_cell(rgb: np.ndarray, params: NucleusParams, scale: float = 1.0) -> Nucleus | None:
    """The nucleus of the image's one white cell: the largest, weighed by nearness to centre."""
    nuclei = find_nuclei(rgb, params, scale)
    if not nuclei:
        return None
    h, w = rgb.shape[:2]
    half_diag = 0.5 * float(np.hypot(h, w))

    def score(nuc: Nucleus) -> float:
        d = np.hypot(nuc.cx - w / 2, nuc.cy - h / 2) / half_diag
        return nuc.area * float(np.exp(-params.centre_weight * d * d))

    return max(nuclei, key=score)


def _morph(mask: np.ndarray, op: int, radius: float) -> np.ndarray:
    r = round(radius)
    if r < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.morphologyEx(mask, op, kernel)
