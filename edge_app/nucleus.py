"""Find white cells by their nuclei: dark violet stain against pink red cells and pale background.

Cell mode (`locate_cell`) and field mode (`find_cells`) share the same stain mask and the
same merging of lobes, so both feed the model the same kind of crop.

One pass over the frame: it is shrunk to the training scale (`scale` camera px per training
px; never enlarged), stain-masked and closed there, and `cv2.connectedComponentsWithStats`
gives every stained component's area, box and centre in one call. Lobes are merged by the
distance between components (union-find over the pairs closer than twice `merge_radius`),
which is what a dilation by `merge_radius` did, without the dilation. Boxes and centres are
mapped back to frame pixels. The cost follows the frame's pixels, not the number of specks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_app.preprocess_spec import NucleusParams


@dataclass(frozen=True)
class Nucleus:
    """One stained nucleus (lobes merged): its centre, box (x0, y0, x1, y1) and stained area.

    All in frame pixels; the area is the stained pixel count at the frame's resolution.
    """

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
    h, w = rgb.shape[:2]
    shrink = max(1.0, scale)  # work at the training scale, never above the frame's own
    small = _shrink(rgb, shrink)
    sy, sx = h / small.shape[0], w / small.shape[1]  # frame px per working px
    per_training = scale / shrink  # working px per training px
    mask = stain_mask(small, params)
    mask = _morph(mask, cv2.MORPH_CLOSE, params.close_radius * per_training)
    _, labels, stats, centres = cv2.connectedComponentsWithStats(mask, connectivity=8)
    merge_r = round(params.merge_radius * per_training)
    groups = _merge(labels, stats[1:], 2 * merge_r + 1 if merge_r >= 1 else 0)
    min_area = params.min_area * scale * scale
    found = []
    for members in groups:
        nuc = _nucleus(stats, centres, np.asarray(members) + 1, (sx, sy), (w, h))
        if nuc.area >= min_area:
            found.append(nuc)
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


def _nucleus(
    stats: np.ndarray,
    centres: np.ndarray,
    idx: np.ndarray,
    step: tuple[float, float],
    size: tuple[int, int],
) -> Nucleus:
    """Components `idx` as one nucleus in frame pixels (`step`: frame px per working px)."""
    (sx, sy), (w, h) = step, size
    areas = stats[idx, cv2.CC_STAT_AREA]
    area = float(areas.sum())
    cx, cy = (areas @ centres[idx]) / area
    left, top = stats[idx, cv2.CC_STAT_LEFT], stats[idx, cv2.CC_STAT_TOP]
    right = (left + stats[idx, cv2.CC_STAT_WIDTH]).max()
    bottom = (top + stats[idx, cv2.CC_STAT_HEIGHT]).max()
    box = (
        int(left.min() * sx),
        int(top.min() * sy),
        min(w, round(right * sx)),
        min(h, round(bottom * sy)),
    )
    return Nucleus(
        float((cx + 0.5) * sx - 0.5), float((cy + 0.5) * sy - 0.5), box, round(area * sx * sy)
    )


def _shrink(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The image at 1/factor of its size (pixel averaging); itself for factor 1."""
    h, w = rgb.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    if size == (w, h):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _merge(labels: np.ndarray, stats: np.ndarray, max_gap: int) -> list[list[int]]:
    """Components (0-based, label - 1) grouped where two lie within `max_gap` px of each other.

    Pairs whose boxes are that close are checked on the pixels: a distance transform of one
    component's neighbourhood gives its distance to the other's nearest pixel.
    """
    n = len(stats)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1 and max_gap > 0:
        x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        x1 = x0 + stats[:, cv2.CC_STAT_WIDTH] - 1
        y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT] - 1
        gx = np.maximum(0, np.maximum(x0[None, :] - x1[:, None], x0[:, None] - x1[None, :]))
        gy = np.maximum(0, np.maximum(y0[None, :] - y1[:, None], y0[:, None] - y1[None, :]))
        near = np.triu(gx * gx + gy * gy <= max_gap * max_gap, k=1)
        for i in np.flatnonzero(near.any(axis=1)):
            others = [j for j in np.flatnonzero(near[i]) if root(i) != root(j)]
            if others:
                for j in _within(labels, stats[i], i + 1, [j + 1 for j in others], max_gap):
                    parent[root(j - 1)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _within(
    labels: np.ndarray, stat: np.ndarray, label: int, others: list[int], max_gap: int
) -> list[int]:
    """The labels of `others` with a pixel within `max_gap` px of a pixel of `label`."""
    h, w = labels.shape
    x, y, bw, bh = (int(v) for v in stat[:4])
    m = max_gap + 1
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)
    roi = labels[y0:y1, x0:x1]
    dist = cv2.distanceTransform(
        (roi != label).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    )
    return [j for j in others if (hits := dist[roi == j]).size and hits.min() <= max_gap]


def _morph(mask: np.ndarray, op: int, radius: float) -> np.ndarray:
    r = round(radius)
    if r < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.morphologyEx(mask, op, kernel)
