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

from wbc_edge.core.preprocess_spec import NucleusParams
from wbc_edge.core.resample import shrink_by
from wbc_edge.core.union_find import UnionFind


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
    if params.stain_threshold >= 0:  # saturating B - G loses nothing then: OpenCV, one pass each
        _, g, b = cv2.split(rgb)
        stained = cv2.threshold(cv2.subtract(b, g), params.stain_threshold, 1, cv2.THRESH_BINARY)
        dark = cv2.threshold(g, params.max_green, 1, cv2.THRESH_BINARY_INV)
        return cv2.bitwise_and(stained[1], dark[1])
    g = rgb[:, :, 1].astype(np.int16)
    b = rgb[:, :, 2].astype(np.int16)
    return ((b - g > params.stain_threshold) & (g <= params.max_green)).astype(np.uint8)


def find_nuclei(
    rgb: np.ndarray, params: NucleusParams, scale: float = 1.0, small: np.ndarray | None = None
) -> list[Nucleus]:
    """All nuclei in an image, largest first. `scale` = image pixels per training-image pixel.

    `small`: the image already brought to the working scale (`working_image`, perhaps
    colour-corrected after shrinking); `rgb` then only gives the frame's size.
    """
    h, w = rgb.shape[:2]
    small = working_image(rgb, scale) if small is None else small
    sy, sx = h / small.shape[0], w / small.shape[1]  # frame px per working px
    per_training = scale / max(1.0, scale)  # working px per training px
    mask = stain_mask(small, params)
    mask = _morph(mask, cv2.MORPH_CLOSE, params.close_radius * per_training)
    _, labels, stats, centres = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask, 8, cv2.CV_32S, cv2.CCL_GRANA
    )
    stats, centres = stats[1:], centres[1:]  # label 0 is the background
    merge_r = round(params.merge_radius * per_training)
    min_area = params.min_area * scale * scale  # frame px
    group = _merge(labels, stats, 2 * merge_r + 1 if merge_r >= 1 else 0, min_area / (sx * sy))
    areas = stats[:, cv2.CC_STAT_AREA]
    group_area = np.bincount(group, weights=areas, minlength=1) * (sx * sy)
    found = [
        _nucleus(stats, centres, np.flatnonzero(group == g), (sx, sy), (w, h))
        for g in np.flatnonzero(group_area >= min_area)
    ]
    return sorted(found, key=lambda nuc: -nuc.area)


def locate_cell(
    rgb: np.ndarray, params: NucleusParams, scale: float = 1.0, small: np.ndarray | None = None
) -> Nucleus | None:
    """The nucleus of the image's one white cell: the largest, weighed by nearness to centre."""
    nuclei = find_nuclei(rgb, params, scale, small)
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


def working_image(rgb: np.ndarray, scale: float) -> np.ndarray:
    """The image at the training scale (`scale` image px per training px), never enlarged."""
    return shrink_by(rgb, max(1.0, scale))


def _merge(labels: np.ndarray, stats: np.ndarray, max_gap: int, min_area: float) -> np.ndarray:
    """A group number per component: components within `max_gap` px of each other share one.

    Pairs whose boxes lie that close are candidates; only candidates that could add up to a
    nucleus of `min_area` (working px) are checked on their edge pixels, so specks cost next
    to nothing.
    """
    n = len(stats)
    groups = UnionFind(n)
    if n < 2 or max_gap <= 0:
        return groups.labels()
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    x1 = x0 + stats[:, cv2.CC_STAT_WIDTH] - 1
    y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT] - 1
    gx = np.maximum(0, np.maximum(x0[None, :] - x1[:, None], x0[:, None] - x1[None, :]))
    gy = np.maximum(0, np.maximum(y0[None, :] - y1[:, None], y0[:, None] - y1[None, :]))
    upper = np.arange(n)[:, None] < np.arange(n)[None, :]
    pairs = np.argwhere((gx * gx + gy * gy <= max_gap * max_gap) & upper).tolist()
    coarse = UnionFind(n)
    for i, j in pairs:
        coarse.union(i, j)
    rough = coarse.labels()
    could_count = np.bincount(rough, weights=stats[:, cv2.CC_STAT_AREA]) >= min_area
    edges: dict[int, np.ndarray] = {}
    for i, j in pairs:
        if could_count[rough[i]] and groups.find(i) != groups.find(j):
            a = edges.get(i)
            a = edges[i] = a if a is not None else _edge_points(labels, stats[i], i + 1)
            b = edges.get(j)
            b = edges[j] = b if b is not None else _edge_points(labels, stats[j], j + 1)
            if _min_sq_distance(a, b) <= max_gap * max_gap:
                groups.union(i, j)
    return groups.labels()


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _edge_points(labels: np.ndarray, stat: np.ndarray, label: int) -> np.ndarray:
    """(k, 2) int32 frame coordinates of a component's pixels with a 4-neighbour outside it.

    The nearest pixels of two components lie on their edges, so only edges are compared.
    """
    x, y, w, h = (int(v) for v in stat[:4])
    m = (labels[y : y + h, x : x + w] == label).view(np.uint8)
    inner = cv2.erode(m, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return np.argwhere(m > inner).astype(np.int32) + np.array([y, x], np.int32)


def _min_sq_distance(a: np.ndarray, b: np.ndarray) -> int:
    d = a[:, None, :] - b[None, :, :]
    return int((d * d).sum(axis=2).min())


def _morph(mask: np.ndarray, op: int, radius: float) -> np.ndarray:
    r = round(radius)
    if r < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.morphologyEx(mask, op, kernel)
