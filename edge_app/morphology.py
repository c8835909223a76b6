"""What a hematologist looks at, measured per found cell: nucleus, lobes, cytoplasm, granules.

`measure_cell` takes the colour-normalised frame, the cell's nucleus (as `core.nucleus`
found it) and the run's scale; it cuts the crop window around the nucleus, brings it to the
training scale (so every length is in training-image pixels, whatever the camera) and measures:

- the nucleus: the chromatin (B - G above `NUCLEUS_STAIN`, stricter than the finder's mask,
  which takes in violet cytoplasm) in the components centred in the found nucleus's box; its
  area, solidity (area / convex hull area), convexity (hull perimeter / perimeter), elongation
  (minor / major axis of its ellipse), lobe count (the parts deeper inside it than
  `LOBE_DEPTH` of its thickest part: thin strands between lobes fall away), stain (mean
  B - G) and darkness (mean G);
- the cell: the nucleus and the violet-tinged pixels (B - G above `CELL_STAIN`, where red
  cells and glass lie below) joined to it within `CELL_REACH` px, holes filled; and the
  nucleus:cell area ratio;
- the cytoplasm (cell less nucleus): its mean colour, the share of red/orange pixels (R above
  B: eosinophils' granules; `granule_score`) and the spread of its green (texture).

Areas are also given in µm² when the run's scale is known: the red cell is the ruler, about
`RBC_UM` µm and `RBC_DIAMETER` training px across (BCCD's red-cell boxes; the granulometry
diameter `edge_app.scale` matches cameras with, 38.2 px, is a size statistic of the opening,
about 0.73 of the diameter, and would read areas 1.85x too large).
numpy and OpenCV only: it runs on the device.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import cv2
import numpy as np

from wbc_edge.core.field import RBC_DIAMETER
from wbc_edge.core.nucleus import Nucleus, stain_mask
from wbc_edge.core.preprocess import corrected_window
from wbc_edge.core.preprocess_spec import NucleusParams
from wbc_edge.core.resample import shrink
from wbc_edge.edge_app.scale import RBC_UM

UM_PER_PX = RBC_UM / RBC_DIAMETER  # µm per training-image pixel (0.144)
NUCLEUS_STAIN = 70.0  # B - G of nuclear chromatin (the finder's 45 takes in violet cytoplasm)
CELL_STAIN = 12.0  # B - G of cytoplasm: above the red cells' (about 7) and the glass's (-4)
LOBE_DEPTH = 0.45  # lobes: parts of the nucleus deeper than this share of its thickest part
MIN_LOBE_SHARE = 0.06  # a part smaller than this share of the deep parts is not a lobe
MIN_LOBE_PX = 6
CELL_REACH = 20  # cytoplasm counted up to this many training px outside the nucleus
GRANULE_RB = 0.0  # a granule pixel of the cytoplasm: R - B above this (red/orange, not violet)

# The numbers a model reads, in this order (`Morphology.vector`).
FEATURES = (
    "nucleus_area_px",
    "cell_area_px",
    "nc_ratio",
    "lobes",
    "solidity",
    "convexity",
    "elongation",
    "nucleus_stain",
    "nucleus_green",
    "cytoplasm_r",
    "cytoplasm_g",
    "cytoplasm_b",
    "granule_score",
    "cytoplasm_texture",
)


@dataclass(frozen=True)
class Morphology:
    """One cell's measurements; areas in training-image px² (µm² in `to_record` if known)."""

    nucleus_area_px: float
    cell_area_px: float
    nc_ratio: float
    lobes: int
    solidity: float
    convexity: float
    elongation: float
    nucleus_stain: float
    nucleus_green: float
    cytoplasm_r: float
    cytoplasm_g: float
    cytoplasm_b: float
    granule_score: float
    cytoplasm_texture: float
    scale_known: bool = False

    def vector(self) -> np.ndarray:
        """float64 (len(FEATURES),) in FEATURES order."""
        return np.array([float(getattr(self, name)) for name in FEATURES])

    def to_record(self) -> dict[str, float | int | list[float] | None]:
        """The JSONL/report fields: rounded, with µm² (None when the scale is not known)."""
        um2 = UM_PER_PX * UM_PER_PX if self.scale_known else None
        return {
            "nucleus_area_px": round(self.nucleus_area_px, 1),
            "nucleus_area_um2": None if um2 is None else round(self.nucleus_area_px * um2, 1),
            "cell_area_px": round(self.cell_area_px, 1),
            "cell_area_um2": None if um2 is None else round(self.cell_area_px * um2, 1),
            "nc_ratio": round(self.nc_ratio, 3),
            "lobes": self.lobes,
            "solidity": round(self.solidity, 3),
            "convexity": round(self.convexity, 3),
            "elongation": round(self.elongation, 3),
            "nucleus_stain": round(self.nucleus_stain, 1),
            "nucleus_green": round(self.nucleus_green, 1),
            "cytoplasm_rgb": [
                round(self.cytoplasm_r, 1),
                round(self.cytoplasm_g, 1),
                round(self.cytoplasm_b, 1),
            ],
            "granule_score": round(self.granule_score, 3),
            "cytoplasm_texture": round(self.cytoplasm_texture, 1),
        }


def measure_cell(
    rgb: np.ndarray,
    nucleus: Nucleus,
    params: NucleusParams,
    scale: float = 1.0,
    size: int = 150,
    scale_known: bool = False,
    lut: np.ndarray | None = None,
) -> Morphology:
    """Measure the cell around `nucleus` in a colour-normalised RGB uint8 frame.

    `scale`: frame px per training px; `size`: the crop window's side in training px (the
    bundle's crop size); `scale_known`: the scale was measured or given (µm² are reported);
    `lut`: the frame's colour table when `rgb` is the frame as captured (applied to the crop).
    """
    window, origin = corrected_window(rgb, nucleus.cx, nucleus.cy, size * scale, lut)
    return measure_window(window, origin, nucleus, params, scale, size, scale_known)


def measure_window(
    window: np.ndarray,
    origin: tuple[int, int],
    nucleus: Nucleus,
    params: NucleusParams,
    scale: float = 1.0,
    size: int = 150,
    scale_known: bool = False,
) -> Morphology:
    """`measure_cell` of the window already cut around the nucleus and colour-corrected
    (`core.preprocess.corrected_window`), whose top-left corner lies at `origin` in the frame."""
    crop = window
    if crop.shape[0] != size:
        crop = shrink(crop, (size, size)) if crop.shape[0] > size else _enlarge(crop, size)
    f = size / max(1, round(size * scale))  # training px per frame px
    x0, y0 = origin
    box = tuple((v - o) * f for v, o in zip(nucleus.box, (x0, y0, x0, y0), strict=True))
    nuc = nucleus_mask(crop, params, box)
    return measure_masks(crop, nuc, params, scale_known)


def _enlarge(crop: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def nucleus_mask(
    crop: np.ndarray, params: NucleusParams, box: tuple[float, ...] | None = None
) -> np.ndarray:
    """uint8 0/1 mask of the nucleus: the chromatin (B - G above NUCLEUS_STAIN, closed) in
    components centred in `box` (x0, y0, x1, y1 in crop px, the finder's nucleus box; None:
    the component nearest the crop's centre)."""
    mask = _close(stain_mask(crop, _stained_above(params, NUCLEUS_STAIN)), params.close_radius)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 1:
        return mask
    areas, centres = _areas_and_centres(mask, labels, n)
    if box is not None:
        x0, y0, x1, y1 = box
        cx, cy = centres[:, 0], centres[:, 1]
        keep = (cx >= x0 - 1) & (cx <= x1 + 1) & (cy >= y0 - 1) & (cy <= y1 + 1)
        keep &= areas >= MIN_LOBE_PX
        if keep.any():
            return _only(labels, np.flatnonzero(keep) + 1, n)
    h, w = mask.shape
    d = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
    return (labels == int(np.argmin(d)) + 1).astype(np.uint8)


def _areas_and_centres(
    mask: np.ndarray, labels: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and mean (x, y) of components 1..n-1 (as connectedComponentsWithStats,
    which costs several times the labelling in OpenCV 5)."""
    points = cv2.findNonZero(mask).reshape(-1, 2)
    lab = labels[points[:, 1], points[:, 0]]
    areas = np.bincount(lab, minlength=n)[1:]
    xs = np.bincount(lab, points[:, 0], n)[1:]
    ys = np.bincount(lab, points[:, 1], n)[1:]
    return areas, np.stack([xs / areas, ys / areas], axis=1)


def _only(labels: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """uint8 0/1 mask of the pixels whose label is in `keep` (labels 1..n-1)."""
    chosen = np.zeros(n, np.uint8)
    chosen[keep] = 1
    chosen[0] = 0
    return chosen[labels]


@functools.lru_cache(maxsize=8)
def _stained_above(params: NucleusParams, threshold: float) -> NucleusParams:
    """The nucleus parameters with another B - G threshold (made once per bundle)."""
    return dataclasses.replace(params, stain_threshold=threshold)


def measure_masks(
    crop: np.ndarray, nuc: np.ndarray, params: NucleusParams, scale_known: bool = False
) -> Morphology:
    """The measurements of a training-scale crop and its nucleus mask (uint8 0/1)."""
    area = float(nuc.sum())
    cell = cell_mask(crop, nuc, params)
    cell_area = float(cell.sum())
    cyto = (cell > 0) & (nuc == 0)
    if not cyto.any():  # no cytoplasm seen: its colour is read on a thin ring instead
        cyto = (cv2.dilate(nuc, _disc(3)) > 0) & (nuc == 0)
    solidity, convexity, elongation = _shape(nuc)
    chromatin = crop[nuc > 0].astype(np.float32)
    stain = float(np.mean(chromatin[:, 2] - chromatin[:, 1])) if len(chromatin) else 0.0
    green = float(np.mean(chromatin[:, 1])) if len(chromatin) else 0.0
    px = crop[cyto].astype(np.float32)
    if len(px):
        r, g, b = (float(v) for v in px.mean(axis=0))
        granule, texture = float(np.mean(px[:, 0] - px[:, 2] > GRANULE_RB)), float(px[:, 1].std())
    else:
        r = g = b = granule = texture = 0.0
    return Morphology(
        nucleus_area_px=area,
        cell_area_px=cell_area,
        nc_ratio=area / cell_area if cell_area else 1.0,
        lobes=count_lobes(nuc),
        solidity=solidity,
        convexity=convexity,
        elongation=elongation,
        nucleus_stain=stain,
        nucleus_green=green,
        cytoplasm_r=r,
        cytoplasm_g=g,
        cytoplasm_b=b,
        granule_score=granule,
        cytoplasm_texture=texture,
        scale_known=scale_known,
    )


def count_lobes(nuc: np.ndarray, depth: float = LOBE_DEPTH) -> int:
    """Parts of the nucleus deeper inside it than `depth` of its thickest part (distance to
    its edge): thin strands between lobes fall away, a round nucleus stays one. Parts under
    MIN_LOBE_SHARE of the deep area (or MIN_LOBE_PX) are specks. 0 for an empty mask."""
    if not nuc.any():
        return 0
    rows, cols = _around(nuc, 0)  # the ring padded around its box is as far as its edge
    dist = _distance(np.pad(nuc[rows, cols], 1))[1:-1, 1:-1]
    deep = (dist > depth * float(dist.max())).astype(np.uint8)
    n, labels = cv2.connectedComponents(deep, connectivity=8)
    sizes = np.bincount(labels[deep > 0], minlength=n)[1:]
    floor = max(MIN_LOBE_PX, MIN_LOBE_SHARE * float(sizes.sum()))
    return max(1, int(np.sum(sizes >= floor)))


def cell_mask(
    crop: np.ndarray, nuc: np.ndarray, params: NucleusParams, reach: int = CELL_REACH
) -> np.ndarray:
    """uint8 0/1: the nucleus and the cytoplasm-coloured pixels (B - G above CELL_STAIN)
    joined to it within `reach` px, holes filled.

    Only the nucleus's box widened by `reach` and the closing's reach is looked at: nothing
    farther can be joined, and the closing there sees what it sees in the whole crop.
    """
    if not nuc.any():
        return nuc
    rows, cols = _around(nuc, reach + 2 * params.close_radius + 2)
    part, near_nuc = crop[rows, cols], nuc[rows, cols]
    loose = _stained_above(params, CELL_STAIN)
    near = (_distance(1 - near_nuc) <= reach).astype(np.uint8)
    solid = (_close(stain_mask(part, loose), params.close_radius) | near_nuc) & near
    n, labels = cv2.connectedComponents(solid, connectivity=8)
    touching = _only(labels, labels[near_nuc > 0], n)
    contours, _ = cv2.findContours(touching, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(nuc)
    cv2.drawContours(out[rows, cols], contours, -1, 1, thickness=cv2.FILLED)
    return out


def _around(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The rows and columns of the mask's set pixels' box widened by `margin` (clipped)."""
    x, y, w, h = cv2.boundingRect(mask)
    rows = slice(max(0, y - margin), min(mask.shape[0], y + h + margin))
    cols = slice(max(0, x - margin), min(mask.shape[1], x + w + margin))
    return rows, cols


def _shape(nuc: np.ndarray) -> tuple[float, float, float]:
    """Solidity, convexity and elongation of the mask's largest outline (1, 1, 1 if empty)."""
    contours, _ = cv2.findContours(nuc, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 1.0, 1.0, 1.0
    points = np.concatenate(contours)
    hull = cv2.convexHull(points)
    hull_area = float(cv2.contourArea(hull))
    area = sum(float(cv2.contourArea(c)) for c in contours)
    solidity = min(1.0, area / hull_area) if hull_area > 0 else 1.0
    # the outline smoothed by a pixel, so a staircase edge does not count as a rough one
    perimeter = sum(float(cv2.arcLength(cv2.approxPolyDP(c, 1.0, True), True)) for c in contours)
    convexity = min(1.0, float(cv2.arcLength(hull, True)) / perimeter) if perimeter > 0 else 1.0
    elongation = 1.0
    if len(points) >= 5:
        (_, _), axes, _ = cv2.fitEllipse(points)
        elongation = float(min(axes) / max(axes)) if max(axes) > 0 else 1.0
    return solidity, convexity, elongation


def _distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the nearest 0 of the mask, to within about 2 % (a disc
    dilation of any radius in one pass: far cheaper than dilating by a large disc)."""
    return cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_5)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disc(radius)) if radius >= 1 else mask
