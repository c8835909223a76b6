"""Synthetic white-blood-cell images for tests and demos (numpy + OpenCV only).

Mimics the Kaggle "Blood Cell Images" set: crops with one white blood cell (WBC) near the centre
among pink red blood cells (RBC) on a pale background, in four classes that differ by the shape
of the violet nucleus and by the colour and size of the cytoplasm. The Kaggle files are augmented
copies (rotation with black corners, flip, shift, zoom) of a few source cells; `make_cell_dataset`
reproduces that structure and records the ground-truth source cell of every file. `render_field`
draws a whole microscope field (BCCD-like, 640x480) with zero or more white cells.

Everything is deterministic given the `numpy.random.Generator` (or seed) passed in. Every source
cell has its own random nucleus shape, RBC layout, granules and texture, so SIFT keypoints exist,
copies of one cell match each other and different cells do not.

Colours are RGB. The nucleus stain has B - G of about 100-130; nothing else drawn (background,
RBCs, cytoplasm, granules) reaches B - G > 60, except the tiny stained core of platelets.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")

Box = tuple[int, int, int, int]
Point = tuple[float, float]
Color = tuple[float, float, float]

BACKGROUND: Color = (225.0, 225.0, 215.0)
RBC_BODY: Color = (222.0, 148.0, 158.0)
RBC_RIM: Color = (196.0, 118.0, 134.0)
RBC_PALLOR: Color = (238.0, 204.0, 204.0)
PLATELET_HALO: Color = (196.0, 170.0, 208.0)
PLATELET_CORE: Color = (118.0, 72.0, 196.0)
RBC_SCALE = 0.38  # RBC diameter relative to the nominal WBC diameter (~40 px vs ~105 px)
_SHIFT = 4  # sub-pixel bits for cv2 drawing


@dataclass(frozen=True)
class SyntheticImage:
    """One written file: `path` relative to the data root (see `make_cell_dataset`)."""

    path: Path
    label: str
    cell_id: str


@dataclass(frozen=True)
class _Style:
    """Per-class look: cell size factor, cytoplasm, granule and nucleus colours."""

    size: float
    cytoplasm: Color
    granule: Color
    granule_density: float  # granules per (cell radius)^2
    granule_alpha: float
    nucleus: Color


_STYLES: dict[str, _Style] = {
    "EOSINOPHIL": _Style(
        1.0, (240.0, 196.0, 170.0), (222.0, 104.0, 62.0), 110.0, 0.85, (118.0, 64.0, 192.0)
    ),
    "LYMPHOCYTE": _Style(
        0.76, (178.0, 196.0, 236.0), (160.0, 180.0, 226.0), 8.0, 0.5, (100.0, 52.0, 182.0)
    ),
    "MONOCYTE": _Style(
        1.14, (176.0, 182.0, 204.0), (214.0, 218.0, 232.0), 14.0, 0.8, (138.0, 96.0, 206.0)
    ),
    "NEUTROPHIL": _Style(
        0.98, (240.0, 212.0, 222.0), (206.0, 160.0, 192.0), 60.0, 0.45, (122.0, 70.0, 200.0)
    ),
}


# --------------------------------------------------------------------------- geometry helpers


def _blob(
    center: Point,
    rx: float,
    ry: float,
    angle: float,
    rng: np.random.Generator,
    jitter: float = 0.06,
    n: int = 64,
) -> np.ndarray:
    """Outline (n, 2) of a rotated ellipse with a smooth random radial wobble of ~`jitter`."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    wobble = np.ones_like(t)
    for k in (2, 3, 4, 5):
        wobble += jitter / k * rng.normal() * np.cos(k * t + rng.uniform(0.0, 2.0 * np.pi))
    wobble = np.clip(wobble, 1.0 - 1.5 * jitter, 1.0 + 1.5 * jitter)
    return _place(np.stack([rx * wobble * np.cos(t), ry * wobble * np.sin(t)], 1), center, angle)


def _place(local: np.ndarray, center: Point, angle: float) -> np.ndarray:
    """Rotate local (n, 2) points by `angle` (radians) and move them to `center`."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.asarray(center, dtype=np.float64)


def _bar(p0: np.ndarray, p1: np.ndarray, width: float) -> np.ndarray:
    """Quadrilateral of the given width from p0 to p1 (a nuclear strand)."""
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * width / 2.0
    return np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal])


def _fill_mask(shape: tuple[int, int], polys: Sequence[np.ndarray], blur: float) -> np.ndarray:
    """Float mask in [0, 1] of the union of polygons, anti-aliased and softened by `blur`."""
    mask = np.zeros(shape, np.uint8)
    for poly in polys:
        pts = np.round(poly * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=_SHIFT)
    return _soften(mask, blur)


def _dots_mask(
    shape: tuple[int, int], centers: np.ndarray, radii: np.ndarray, blur: float
) -> np.ndarray:
    """Float mask in [0, 1] of filled circles."""
    mask = np.zeros(shape, np.uint8)
    for (x, y), r in zip(centers, radii, strict=True):
        center = (round(float(x) * (1 << _SHIFT)), round(float(y) * (1 << _SHIFT)))
        cv2.circle(mask, center, round(float(r) * (1 << _SHIFT)), 255, -1, cv2.LINE_AA, _SHIFT)
    return _soften(mask, blur)


def _soften(mask: np.ndarray, blur: float) -> np.ndarray:
    out = mask.astype(np.float32) / 255.0
    return cv2.GaussianBlur(out, (0, 0), blur) if blur > 0 else out


def _blend(
    canvas: np.ndarray, mask: np.ndarray, color: Color | np.ndarray, alpha: float = 1.0
) -> None:
    """canvas <- canvas + alpha*mask*(color - canvas), in place; color is RGB or an image."""
    col = np.asarray(color, np.float32)
    canvas += (alpha * mask)[..., None] * (col - canvas)


def _noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random texture with unit standard deviation and features of ~`scale` pixels."""
    h, w = shape
    small = rng.normal(size=(max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)))
    field = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _jitter(color: Color, rng: np.random.Generator, amount: float) -> Color:
    r, g, b = np.asarray(color) + rng.uniform(-amount, amount, 3)
    return float(r), float(g), float(b)


def _roi(canvas: np.ndarray, center: Point, radius: float) -> tuple[np.ndarray, Point] | None:
    """View of the canvas around a circle and the circle's centre inside that view."""
    h, w = canvas.shape[:2]
    x0, y0 = max(int(center[0] - radius) - 3, 0), max(int(center[1] - radius) - 3, 0)
    x1, y1 = min(int(center[0] + radius) + 4, w), min(int(center[1] + radius) + 4, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return canvas[y0:y1, x0:x1], (center[0] - x0, center[1] - y0)


# --------------------------------------------------------------------------- background, RBCs


def draw_background(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Float32 RGB canvas (H, W, 3): pale grey-white with uneven illumination and fine texture."""
    h, w = shape
    tint = np.asarray(_jitter(BACKGROUND, rng, 6.0), np.float32)
    light = 1.0 + 0.025 * _noise(shape, max(h, w) / 2.0, rng)
    grain = 2.0 * _noise(shape, 3.0, rng)
    return tint * light[..., None] + grain[..., None]


def _draw_rbc(canvas: np.ndarray, center: Point, radius: float, rng: np.random.Generator) -> None:
    """One RBC: a pink disc with darker rim and paler centre, slightly see-through."""
    roi = _roi(canvas, center, radius * 1.1)
    if roi is None:
        return
    view, c = roi
    shape = view.shape[:2]
    angle = rng.uniform(0.0, np.pi)
    outline = _blob(c, radius, radius * rng.uniform(0.85, 1.0), angle, rng, jitter=0.04, n=40)
    body = _jitter(RBC_BODY, rng, 8.0)
    _blend(view, _fill_mask(shape, [outline], 0.7), _jitter(RBC_RIM, rng, 6.0), 0.9)
    inner = (outline - c) * 0.84 + c
    _blend(view, _fill_mask(shape, [inner], max(0.8, 0.08 * radius)), body, 0.95)
    pallor = (outline - c) * rng.uniform(0.4, 0.55) + c + rng.normal(0.0, 0.05 * radius, 2)
    _blend(view, _fill_mask(shape, [pallor], max(1.0, 0.12 * radius)), RBC_PALLOR, 0.85)


def _free(p: np.ndarray, others: Sequence[tuple[Point, float]]) -> bool:
    return all(np.hypot(p[0] - c[0], p[1] - c[1]) >= r for c, r in others)


def draw_rbcs(
    canvas: np.ndarray,
    diameter: float,
    rng: np.random.Generator,
    avoid: Sequence[tuple[Point, float]] = (),
) -> int:
    """Scatter RBCs of about `diameter` (loosely packed, some overlapping) outside the `avoid`
    circles (centre, radius); returns how many were drawn."""
    h, w = canvas.shape[:2]
    r = diameter / 2.0
    target = int(rng.uniform(0.4, 0.7) * w * h / (np.pi * r * r))
    placed: list[tuple[Point, float]] = []
    for _ in range(target * 20):
        if len(placed) >= target:
            break
        p = rng.uniform([-0.5 * r, -0.5 * r], [w + 0.5 * r, h + 0.5 * r])
        if _free(p, avoid) and _free(p, placed):
            placed.append(((float(p[0]), float(p[1])), rng.uniform(1.55, 1.9) * r))
    for center, _ in placed:
        _draw_rbc(canvas, center, r * rng.uniform(0.9, 1.1), rng)
    return len(placed)


def draw_platelets(
    canvas: np.ndarray,
    count: int,
    cell_diameter: float,
    rng: np.random.Generator,
    avoid: Sequence[tuple[Point, float]] = (),
) -> None:
    """Small distractors: a pale lilac speck (~4% of the cell diameter) with a tiny stained core
    (at most ~20 px with B - G > 60), far smaller than any nucleus."""
    h, w = canvas.shape[:2]
    for _ in range(count * 20):
        if count <= 0:
            break
        p = rng.uniform([0.0, 0.0], [w, h])
        if not _free(p, avoid):
            continue
        count -= 1
        radius = cell_diameter * rng.uniform(0.015, 0.025)
        center = (float(p[0]), float(p[1]))
        halo = _blob(center, radius, radius * 0.8, rng.uniform(0, np.pi), rng, 0.15, 20)
        _blend(canvas, _fill_mask(canvas.shape[:2], [halo], 0.6), PLATELET_HALO, 0.9)
        core = np.array([min(1.8, 0.4 * radius + 0.3)])
        mask = _dots_mask(canvas.shape[:2], np.array([center]), core, 0.0)
        _blend(canvas, mask, PLATELET_CORE, 0.95)


# --------------------------------------------------------------------------- nuclei


def _lobe(
    center: np.ndarray, rx: float, ry: float, angle: float, rng: np.random.Generator, jitter: float
) -> np.ndarray:
    """A nuclear lobe: rx, ry are minimum semi-axes, randomly enlarged by up to a third."""
    scale_x, scale_y = rng.uniform(1.0, 1.33, 2)
    angle += rng.normal(0.0, 0.3)
    return _blob(
        (float(center[0]), float(center[1])), rx * scale_x, ry * scale_y, angle, rng, jitter
    )


def _nucleus_eosinophil(c: Point, r: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Bilobed nucleus: two round lobes joined by a strand."""
    a = rng.uniform(0.0, 2.0 * np.pi)
    axis = np.array([np.cos(a), np.sin(a)])
    d = r * rng.uniform(0.32, 0.4)
    offset = rng.normal(0.0, 0.05 * r, 2)
    lobes = [np.asarray(c) + offset + s * d * axis for s in (-1.0, 1.0)]
    polys = [_lobe(p, r * 0.3, r * 0.25, a + np.pi / 2, rng, 0.08) for p in lobes]
    return [*polys, _bar(lobes[0], lobes[1], 0.1 * r)]


def _nucleus_lymphocyte(c: Point, r: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One big round nucleus filling most of the cell."""
    center = tuple(np.asarray(c) + rng.normal(0.0, 0.04 * r, 2))
    size = r * rng.uniform(0.76, 0.82)
    return [_blob(center, size, size * rng.uniform(0.9, 1.0), rng.uniform(0, np.pi), rng, 0.05)]


def _nucleus_monocyte(c: Point, r: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Large kidney/bean-shaped nucleus, a little off-centre."""
    t = np.linspace(0.0, 2.0 * np.pi, 80, endpoint=False)
    gap = np.angle(np.exp(1j * (t - np.pi / 2)))
    notch = 1.0 - rng.uniform(0.35, 0.5) * np.exp(-(gap**2) / (2 * rng.uniform(0.35, 0.5) ** 2))
    wobble = 1.0 + 0.04 * np.cos(3 * t + rng.uniform(0, 6.3)) + 0.03 * np.cos(5 * t)
    rx, ry = r * rng.uniform(0.58, 0.66), r * rng.uniform(0.44, 0.5)
    local = np.stack([rx * notch * wobble * np.cos(t), ry * notch * wobble * np.sin(t)], 1)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    shift = np.array([-np.sin(angle), np.cos(angle)]) * -0.12 * r  # away from the notch
    return [_place(local, tuple(np.asarray(c) + shift), angle)]


def _nucleus_neutrophil(c: Point, r: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Three to five small lobes along an arc, joined by thin strands."""
    k = int(rng.integers(3, 6))
    step = np.deg2rad(rng.uniform(58.0, 72.0))
    angles = rng.uniform(0.0, 2.0 * np.pi) + step * np.arange(k) + rng.normal(0, 0.1, k)
    arc = r * rng.uniform(0.38, 0.46, k)
    centers = np.asarray(c) + np.stack([arc * np.cos(angles), arc * np.sin(angles)], 1)
    lobes = [_lobe(p, r * 0.15, r * 0.12, rng.uniform(0, np.pi), rng, 0.1) for p in centers]
    strands = [_bar(centers[i], centers[i + 1], 0.06 * r) for i in range(k - 1)]
    return lobes + strands


_NUCLEI: dict[str, Callable[[Point, float, np.random.Generator], list[np.ndarray]]] = {
    "EOSINOPHIL": _nucleus_eosinophil,
    "LYMPHOCYTE": _nucleus_lymphocyte,
    "MONOCYTE": _nucleus_monocyte,
    "NEUTROPHIL": _nucleus_neutrophil,
}


# --------------------------------------------------------------------------- white cell


def _check_label(label: str) -> _Style:
    if label not in _STYLES:
        raise ValueError(f"unknown class {label!r}; expected one of {CLASSES}")
    return _STYLES[label]


def wbc_radius(label: str, cell_diameter: float, rng: np.random.Generator) -> float:
    """Outer radius of a white cell of this class (lymphocytes small, monocytes large)."""
    return cell_diameter / 2.0 * _check_label(label).size * rng.uniform(0.93, 1.07)


def _granules(
    canvas: np.ndarray,
    cyto: np.ndarray,
    center: Point,
    radius: float,
    style: _Style,
    rng: np.random.Generator,
) -> None:
    """Random cytoplasmic granules (eosinophil: dense orange-red; others: sparse, faint)."""
    n = int(style.granule_density * rng.uniform(0.8, 1.2))
    rho = radius * np.sqrt(rng.uniform(0.0, 0.95, n))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    centers = np.asarray(center) + np.stack([rho * np.cos(phi), rho * np.sin(phi)], 1)
    radii = radius * rng.uniform(0.03, 0.055, n)
    mask = _dots_mask(canvas.shape[:2], centers, radii, max(0.4, 0.01 * radius)) * cyto
    _blend(canvas, mask, _jitter(style.granule, rng, 8.0), style.granule_alpha)


def _box(poly: np.ndarray, shape: tuple[int, int]) -> Box:
    h, w = shape
    x0, y0 = np.floor(poly.min(0)).astype(int)
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 1
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)


def draw_wbc(
    canvas: np.ndarray, label: str, center: Point, radius: float, rng: np.random.Generator
) -> Box:
    """Draw one white cell of class `label` and return its box (x0, y0, x1, y1), x1/y1 exclusive."""
    style = _check_label(label)
    shape = canvas.shape[:2]
    outline = _blob(center, radius, radius * rng.uniform(0.88, 1.0), rng.uniform(0, np.pi), rng)
    cyto = _fill_mask(shape, [outline], 0.7)
    shade = 1.0 + 0.04 * _noise(shape, max(2.0, 0.08 * radius), rng)
    _blend(canvas, cyto, np.asarray(_jitter(style.cytoplasm, rng, 6.0)) * shade[..., None])
    _granules(canvas, cyto, center, radius, style, rng)
    nucleus = _fill_mask(shape, _NUCLEI[label](center, radius, rng), max(0.6, 0.015 * radius))
    chromatin = np.clip(1.0 + 0.12 * _noise(shape, max(2.0, 0.07 * radius), rng), 0.75, 1.25)
    ink = np.asarray(_jitter(style.nucleus, rng, 8.0)) / chromatin[..., None]
    _blend(canvas, nucleus * cyto, ink)
    return _box(outline, shape)


def _finish(canvas: np.ndarray, cell_diameter: float, rng: np.random.Generator) -> np.ndarray:
    """Light optical blur and sensor noise, then clip to RGB uint8."""
    out = cv2.GaussianBlur(canvas, (0, 0), max(0.5, 0.006 * cell_diameter))
    out += rng.normal(0.0, 2.0, out.shape).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- public API


def render_cell(
    label: str,
    rng: np.random.Generator,
    size: tuple[int, int] = (320, 240),
    cell_diameter: float | None = None,
) -> tuple[np.ndarray, Box]:
    """One source cell crop: RGB uint8 (H, W, 3) with one WBC near the centre among RBCs, and the
    WBC's box (x0, y0, x1, y1) with x1/y1 exclusive (the cell is rgb[y0:y1, x0:x1]).

    size is (width, height); cell_diameter (nominal WBC diameter) defaults to 0.33 * width.
    """
    _check_label(label)
    w, h = size
    diameter = 0.33 * w if cell_diameter is None else float(cell_diameter)
    canvas = draw_background((h, w), rng)
    center = (w / 2.0 + rng.uniform(-0.04, 0.04) * w, h / 2.0 + rng.uniform(-0.04, 0.04) * h)
    radius = wbc_radius(label, diameter, rng)
    draw_rbcs(canvas, RBC_SCALE * diameter, rng, avoid=[(center, 0.85 * radius)])
    n_platelets = int(rng.choice(4, p=[0.5, 0.3, 0.15, 0.05]))
    draw_platelets(canvas, n_platelets, diameter, rng, avoid=[(center, 1.2 * radius)])
    box = draw_wbc(canvas, label, center, radius, rng)
    return _finish(canvas, diameter, rng), box


def augment_copy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An augmented copy like the Kaggle generator's: random rotation (any angle, black corners),
    horizontal/vertical flips, shift (<= 10% of each side), zoom (0.9-1.1); same size as input."""
    h, w = rgb.shape[:2]
    img = rgb[:, ::-1] if rng.random() < 0.5 else rgb
    img = img[::-1] if rng.random() < 0.5 else img
    angle, zoom = rng.uniform(0.0, 360.0), rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, zoom)
    matrix[:, 2] += rng.uniform(-0.1, 0.1, 2) * (w, h)
    return cv2.warpAffine(
        np.ascontiguousarray(img),
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def _class_counts(cells_per_class: int | dict[str, int]) -> dict[str, int]:
    if not isinstance(cells_per_class, dict):
        counts = dict.fromkeys(CLASSES, int(cells_per_class))
    else:
        for label in cells_per_class:
            _check_label(label)
        counts = {label: int(cells_per_class.get(label, 0)) for label in CLASSES}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"negative cell count in {cells_per_class!r}")
    return counts


def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt in ("jpg", "jpeg") else []
    ok, buf = cv2.imencode("." + fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cannot encode images as {fmt!r}")
    return buf.tobytes()


def _file_numbers(total: int, rng: np.random.Generator) -> list[int]:
    """`total` distinct random numbers, four digits while there are few enough."""
    high = max(10_000, 10 * total)
    return [int(n) for n in rng.choice(high - 1000, size=total, replace=False) + 1000]


def _write_class(
    out_dir: Path,
    label: str,
    sources: list[np.ndarray],
    rngs: list[np.random.Generator],
    copies: int,
    numbers: list[int],
    order_rng: np.random.Generator,
    fmt: str,
) -> list[SyntheticImage]:
    """Write `copies` shuffled passes over the source cells of one class."""
    (out_dir / label).mkdir(parents=True, exist_ok=True)
    records = []
    for _ in range(copies):
        for pos, k in enumerate(order_rng.permutation(len(sources))):
            name = f"_{pos}_{numbers.pop()}.{fmt}"
            (out_dir / label / name).write_bytes(_encode(augment_copy(sources[k], rngs[k]), fmt))
            records.append(SyntheticImage(Path(label) / name, label, f"{label}-{k}"))
    return records


def make_cell_dataset(
    root: Path,
    *,
    cells_per_class: int | dict[str, int] = 3,
    copies_per_cell: int = 4,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    split: str | None = None,
    fmt: str = "jpeg",
) -> list[SyntheticImage]:
    """Write a Kaggle-like tree root/[split/]CLASS/_N_MMMM.<fmt> and return one record per file.

    Each class gets `cells_per_class` source cells (an int, or a dict per class; classes missing
    from the dict get none and no folder) and `copies_per_cell` augmented copies of each. Like
    Kaggle, the copies are written in passes: each pass shuffles the class's source cells and
    names the copy at position N `_N_MMMM`, so N runs over 0..cells-1 but does NOT identify the
    cell; MMMM is a random number, unique in the data set. `SyntheticImage.path` is relative to
    root/split when split is given, else to root; `cell_id` ("EOSINOPHIL-2") is the ground truth.

    Source cells depend only on (seed, class, index, size): TRAIN and TEST written with the same
    seed share source cells (Kaggle's leak) but get different copies and names; use different
    seeds for disjoint cells. fmt is "jpeg", "jpg" or "png".
    """
    if fmt not in ("jpeg", "jpg", "png"):
        raise ValueError(f"unsupported format {fmt!r}")
    counts = _class_counts(cells_per_class)
    out_dir = Path(root) / split if split else Path(root)
    key = zlib.crc32(split.encode()) if split else 0
    numbers = _file_numbers(
        sum(counts.values()) * copies_per_cell, np.random.default_rng([seed, key])
    )
    records: list[SyntheticImage] = []
    for ci, label in enumerate(CLASSES):
        if counts[label] == 0:
            continue
        cells = range(counts[label])
        sources = [render_cell(label, np.random.default_rng([seed, ci, k]), size)[0] for k in cells]
        rngs = [np.random.default_rng([seed, ci, k, key, 1]) for k in cells]
        order = np.random.default_rng([seed, ci, key, 2])
        records += _write_class(out_dir, label, sources, rngs, copies_per_cell, numbers, order, fmt)
    return records


def _place_cells(
    size: tuple[int, int], radii: Sequence[float], rng: np.random.Generator
) -> list[Point]:
    """Centres such that the cells' square extents lie inside the frame and don't overlap."""
    w, h = size
    extents = [1.1 * r + 2.0 for r in radii]
    if any(2 * e > min(w, h) for e in extents):
        raise ValueError("cell_diameter too large for the frame")
    centers: list[Point] = []
    for e in extents:
        for _ in range(5000):
            p = rng.uniform([e, e], [w - e, h - e])
            if all(
                max(abs(p[0] - c[0]), abs(p[1] - c[1])) >= e + f
                for c, f in zip(centers, extents, strict=False)
            ):
                centers.append((float(p[0]), float(p[1])))
                break
        else:
            raise ValueError(f"cannot place {len(radii)} cells without overlap in {size}")
    return centers


def render_field(
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (640, 480),
    n_cells: int = 1,
    labels: Sequence[str] | None = None,
    cell_diameter: float = 200.0,
) -> tuple[np.ndarray, list[Box], list[str]]:
    """A whole microscope field of view: RBC-covered background with n_cells white cells placed
    without overlapping; returns RGB uint8, their boxes (x0, y0, x1, y1; x1/y1 exclusive) and
    labels. n_cells=0 gives a frame with no white cell (RBCs and a few platelets only, whose
    stained cores are tiny). Raises ValueError when the cells don't fit."""
    if labels is None:
        labels = [CLASSES[i] for i in rng.integers(0, len(CLASSES), n_cells)]
    labels = list(labels)
    if len(labels) != n_cells:
        raise ValueError(f"{len(labels)} labels for {n_cells} cells")
    w, h = size
    radii = [wbc_radius(label, cell_diameter, rng) for label in labels]
    centers = _place_cells(size, radii, rng)
    canvas = draw_background((h, w), rng)
    draw_rbcs(
        canvas,
        RBC_SCALE * cell_diameter,
        rng,
        avoid=[(c, 0.85 * r) for c, r in zip(centers, radii, strict=True)],
    )
    draw_platelets(
        canvas,
        int(rng.integers(2, 8)),
        cell_diameter,
        rng,
        avoid=[(c, 1.2 * r) for c, r in zip(centers, radii, strict=True)],
    )
    boxes = [
        draw_wbc(canvas, lab, c, r, rng) for lab, c, r in zip(labels, centers, radii, strict=True)
    ]
    return _finish(canvas, cell_diameter, rng), boxes, labels


def edge_field(seed: int, n: int) -> np.ndarray:
    """A 480x360 field with cells ~106 px: twice the tiny bundle's 160x120 training scale."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        try:
            return render_field(rng, size=(480, 360), n_cells=n, cell_diameter=106)[0]
        except ValueError:  # the cells did not fit: draw again
            continue
    raise AssertionError("cannot place the cells")


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB test image (PNG or JPEG by suffix), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def png_header(width: int, height: int) -> bytes:
    """A tiny, otherwise valid PNG whose IHDR claims width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
