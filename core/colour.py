"""Colour normalisation from the image itself: the slide's empty glass and its red cells.

A camera's white balance (per-channel gains) and exposure (gain and gamma) change every pixel
by a monotone curve per channel: out = k * in^g. Two references fix such a curve: every
blood smear shows empty glass (the brightest large class) and red cells (the most common
object). `estimate_illumination` measures both from the image; `colour_lut` builds the
per-channel curve that maps them onto the training data's references (stored in the bundle's
preprocessing spec); `correct_colour` applies it. Where one reference is missing (a crowded
field with no glass, a frame of empty glass) only a gain is corrected, and the
illumination says so in its `flags`.

The split into glass and cells is made on the green channel (red cells and stained nuclei
absorb green, glass does not) with Otsu's threshold, which a monotone curve per channel
leaves in the same valley, so the same pixels are chosen whatever the camera did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from wbc_edge.core.preprocess_spec import ColourSpec

MIN_FRACTION = 0.03  # a reference needs at least this share of the image's usable pixels
NUCLEUS_SHARE = 0.15  # a darker side smaller than this is taken for nuclei, not red cells
MIN_CONTRAST = 1.08  # glass must be this much brighter in green than the cells
CLEAR_CONTRAST = 1.15  # below this, the brighter side must also look like glass
RED_MARGIN = 1.03  # red cells' red/green ratio over the glass's, at least
GAMMA_RANGE = (0.5, 2.0)  # a fitted exponent outside this range is not a camera curve
GAIN_RANGE = (0.25, 4.0)
DARK = 12  # pixels darker than this in every channel are rotation corners or vignette
CLIPPED = 254  # a glass median this high in a channel: over half of the glass is clipped there
ITERATIONS = 2  # rounds of split-on-corrected-image refinement (see measure_illumination)
STATS_PIXELS = 6_000  # the references are measured on a thumbnail of about this many pixels
_MAX_PIXELS = 160_000
_X = np.arange(256, dtype=np.float64)  # the 256 input values of a table

NO_BACKGROUND = "no_background"
NO_RED_CELLS = "no_red_cells"


@dataclass(frozen=True)
class Illumination:
    """What the image shows of its light: glass and red-cell colours (RGB, 0..255) or None."""

    background: tuple[float, float, float] | None
    red_cell: tuple[float, float, float] | None

    @property
    def flags(self) -> list[str]:
        """Quality flags: which reference the image lacks."""
        out = []
        if self.background is None:
            out.append(NO_BACKGROUND)
        if self.red_cell is None:
            out.append(NO_RED_CELLS)
        return out


@dataclass(frozen=True)
class Regions:
    """The image's usable pixels split into glass and cells (boolean masks, image shape)."""

    usable: np.ndarray
    glass: np.ndarray
    cells: np.ndarray


def split_regions(rgb: np.ndarray) -> Regions:
    """Glass vs cells: Otsu's threshold on green, over the pixels that are not black.

    Where the darker side is small (the threshold fell between stained nuclei and the rest,
    as after a brightening gamma), the brighter side is split again.
    """
    red, green, blue = cv2.split(rgb)
    usable = cv2.max(cv2.max(red, green), blue) > DARK
    values = green[_thinned(usable)]
    if values.size < 64:
        none = np.zeros_like(usable)
        return Regions(usable, none, none)
    t = _otsu(values)
    if np.count_nonzero(values <= t) / values.size < NUCLEUS_SHARE:
        t = _split_brighter(values[values > t], t)
    glass = usable & (green > t)
    return Regions(usable, glass, usable & ~glass)


def _split_brighter(upper: np.ndarray, t: float) -> float:
    """Otsu's threshold within the brighter side `upper` where it separates two classes of
    clearly different green; else `t`, the threshold as it was."""
    if upper.size < 64:
        return t
    t2 = _otsu(upper)
    hi, lo = upper[upper > t2], upper[upper <= t2]
    if hi.size and lo.size and hi.mean() >= MIN_CONTRAST * lo.mean():
        return t2
    return t


def _otsu(values: np.ndarray) -> float:
    t, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def estimate_illumination(
    rgb: np.ndarray, regions: Regions | None = None, spec: ColourSpec | None = None
) -> Illumination:
    """Measure the glass and red-cell colours of an RGB uint8 image (either may be None).

    An image of one material only is taken for glass or for red cells by its colour: the
    nearer of the spec's two references in chromaticity (neutral grey without a spec).
    """
    regions = split_regions(rgb) if regions is None else regions
    planes = cv2.split(rgb)
    n = max(1, np.count_nonzero(regions.usable))
    glass_frac = np.count_nonzero(regions.glass) / n
    red_frac = np.count_nonzero(regions.cells) / n
    background = _masked_median(planes, regions.glass) if glass_frac >= MIN_FRACTION else None
    if background is not None and min(background) >= CLIPPED:
        background = None  # the glass is clipped in every channel: its colour is unknown
    red = None
    if red_frac >= MIN_FRACTION:
        red_cells = _red_cell_mask(planes[1], regions.cells)
        red = _masked_median(planes, red_cells) if red_cells.any() else None
    if background is not None and red is not None and background[1] < MIN_CONTRAST * red[1]:
        # no two classes: one material only (all glass, or all cells), told apart by colour
        if _looks_like_glass(_masked_median(planes, regions.usable), spec):
            red = None
        else:
            background = None
    elif (
        background is not None
        and red is not None
        and background[1] < CLEAR_CONTRAST * red[1]
        and not _looks_like_glass(background, spec)
    ):
        background = None  # two shades of red cells (bodies and rims), no glass
    if red is not None and not _is_red(red, background):
        red = None  # the "cells" are not red: no red cells in this image
    return Illumination(background, red)


def colour_lut(ill: Illumination, spec: ColourSpec) -> np.ndarray | None:
    """Per-channel lookup table (3, 256) uint8 mapping the image onto the spec's references.

    Two references: out = ref_bg * (in / bg)^g per channel, one g for all channels
    (`shared_gamma`), so the glass is mapped exactly and the red cells as closely as one
    camera curve allows; a channel where the glass is clipped takes its glass value from the
    red cells and the reference contrast. One reference: a gain per channel.
    None when the image has neither reference (nothing to correct from).
    """
    ref_bg = np.asarray(spec.background, np.float64)
    ref_red = np.asarray(spec.red_cell, np.float64)
    if ill.background is not None and ill.red_cell is not None:
        bg, red = np.asarray(ill.background, np.float64), np.asarray(ill.red_cell, np.float64)
        seen = np.log(np.maximum(bg, 1.0) / np.maximum(red, 1.0))
        ref = np.log(ref_bg / ref_red)
        clipped = bg >= CLIPPED  # over half the glass at 255 in this channel: its median is lost
        g = shared_gamma(seen[~clipped], ref[~clipped]) if (~clipped).any() else 1.0
        bg = np.where(clipped, red * np.exp(ref / g), bg)  # where the glass would lie
        lut = ref_bg[:, None] * (_X[None, :] / bg[:, None]) ** g
    elif ill.background is not None or ill.red_cell is not None:
        seen, ref = (
            (np.asarray(ill.background), ref_bg)
            if ill.background is not None
            else (np.asarray(ill.red_cell), ref_red)
        )
        gain = np.clip(ref / np.maximum(seen, 1.0), *GAIN_RANGE)
        lut = gain[:, None] * _X[None, :]
    else:
        return None
    return np.clip(lut + 0.5, 0, 255).astype(np.uint8)


def shared_gamma(seen: np.ndarray, ref: np.ndarray) -> float:
    """One exponent for all channels from the glass/red-cell log contrasts, least squares.

    A camera's curve is one gamma for every channel and a gain per channel (white balance);
    the red channel's contrast is small (glass and red cells are both red-bright), so a
    gamma of its own would amplify the references' noise into the nucleus colours.
    """
    denom = float(np.dot(seen, seen))
    if denom < 1e-6:
        return 1.0
    return float(np.clip(np.dot(seen, ref) / denom, *GAMMA_RANGE))


def apply_lut(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a (3, 256) per-channel table to an RGB uint8 image (one OpenCV call)."""
    return cv2.LUT(np.ascontiguousarray(rgb), np.ascontiguousarray(lut.T.reshape(256, 1, 3)))


def correct_colour(
    rgb: np.ndarray,
    spec: ColourSpec,
    ill: Illumination | None = None,
    fallback: Illumination | None = None,
) -> tuple[np.ndarray, Illumination | None]:
    """The image with its light mapped onto the spec's references, and what was measured.

    `ill` fixes the references; None measures them on this image, and `fallback` (a camera
    profile's) supplies a reference the image lacks. The returned illumination is what the
    image showed (its flags say what was missing). A spec with method `none` returns the
    image unchanged and None.
    """
    lut, ill = colour_table(rgb, spec, ill, fallback)
    return (rgb if lut is None else apply_lut(rgb, lut)), ill


def colour_table(
    rgb: np.ndarray,
    spec: ColourSpec,
    ill: Illumination | None = None,
    fallback: Illumination | None = None,
) -> tuple[np.ndarray | None, Illumination | None]:
    """What `correct_colour` would apply to the image (None: nothing), and what it measured.

    A table acts pixel by pixel, so it may be applied to any part of the image (a crop, a
    shrunk copy) instead of the whole: the device corrects only what it looks at.
    """
    if spec.method == "none":
        return None, None
    lut = None
    if ill is None:
        ill, lut = _refine(thumbnail(rgb), spec, ITERATIONS)
    used = ill
    if fallback is not None and (ill.background is None or ill.red_cell is None):
        used = Illumination(
            ill.background or fallback.background,
            ill.red_cell or fallback.red_cell,
        )
    if lut is None or used is not ill:
        lut = colour_lut(used, spec)
    return lut, ill


def measure_illumination(
    rgb: np.ndarray, spec: ColourSpec, rounds: int = ITERATIONS
) -> Illumination:
    """Glass and red-cell colours of an image, the split refined on the corrected image.

    Otsu's split is made where it works best, on the image as the training data looks: each
    round corrects the image with the references so far, splits the corrected image, and
    measures the references again on the original pixels of that split.
    """
    return _refine(thumbnail(rgb), spec, rounds)[0]


def _refine(
    small: np.ndarray, spec: ColourSpec, rounds: int
) -> tuple[Illumination, np.ndarray | None]:
    """`measure_illumination` of a thumbnail, and the illumination's table (`colour_lut`),
    which the last round has already built."""
    ill = estimate_illumination(small, spec=spec)
    lut = colour_lut(ill, spec)
    for _ in range(rounds):
        if lut is None or not (ill.background and ill.red_cell):
            break
        again = estimate_illumination(small, split_regions(apply_lut(small, lut)), spec)
        if again == ill:
            break  # a fixed point: every further round would give the same again
        ill, lut = again, colour_lut(again, spec)
    return ill, lut


def thumbnail(rgb: np.ndarray, pixels: int = STATS_PIXELS) -> np.ndarray:
    """Every k-th pixel in each direction, at most about `pixels` of them (same statistics)."""
    k = thumbnail_step(rgb.shape, pixels)
    # `take` copies the columns about twice as fast as `ascontiguousarray(rgb[::k, ::k])`
    return rgb[::k].take(np.arange(0, rgb.shape[1], k), axis=1) if k > 1 else rgb


def thumbnail_step(shape: tuple[int, ...], pixels: int) -> int:
    """The step k of `thumbnail`: every k-th row and column leave at most about `pixels`."""
    return max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / pixels))))


def histogram(plane: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts (256,) int64 of the values of a uint8 plane, where `mask` (bool or uint8) is set.

    OpenCV counts in float32, exact up to 2**24 pixels a value.
    """
    mask = None if mask is None else mask.view(np.uint8)
    return cv2.calcHist([plane], [0], mask, [256], [0, 256]).ravel().astype(np.int64)


def pooled_illumination(ills: Iterable[Illumination | None]) -> Illumination:
    """One light from many images of one camera: the median glass and the median red-cell
    colour over the images that show each (None where no image shows it).

    A camera's lamp and white balance are the same for every frame it takes; one crop's own
    estimate is noisy (few glass pixels, a stained cell filling the view), their median is not.
    """
    seen = [i for i in ills if i is not None]
    bgs = [i.background for i in seen if i.background is not None]
    reds = [i.red_cell for i in seen if i.red_cell is not None]
    return Illumination(median_colour(bgs), median_colour(reds))


def median_colour(colours: list[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    """The per-channel median of RGB colours (None for no colours)."""
    if not colours:
        return None
    r, g, b = (float(v) for v in np.median(np.asarray(colours, np.float64), axis=0))
    return (r, g, b)


def pooled_table(images: Iterable[np.ndarray], spec: ColourSpec) -> np.ndarray | None:
    """The colour table of a set of images taken as one run (one camera): `colour_lut` of the
    pooled light of their own estimates. The training data's images give a near-identity
    table (its references are their median)."""
    ills = [measure_illumination(rgb, spec) for rgb in images]
    return colour_lut(pooled_illumination(ills), spec)


def reference_colours(images: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """The median glass and red-cell colours over images (training data's references)."""
    bgs, reds = [], []
    for rgb in images:
        ill = estimate_illumination(rgb)
        if ill.background is not None and ill.red_cell is not None:
            bgs.append(ill.background)
            reds.append(ill.red_cell)
    if not bgs:
        raise ValueError("no image shows both empty glass and red cells")
    glass, red = median_colour(bgs), median_colour(reds)
    return [round(x, 2) for x in glass or ()], [round(x, 2) for x in red or ()]


def _looks_like_glass(colour: tuple[float, float, float], spec: ColourSpec | None) -> bool:
    """Nearer the glass reference than the red-cell one in log chromaticity (R/G, B/G)."""

    def chroma(c: tuple[float, ...]) -> np.ndarray:
        r, g, b = (max(v, 1.0) for v in c)
        return np.log([r / g, b / g])

    glass = (1.0, 1.0, 1.0) if spec is None or spec.method == "none" else spec.background
    red = (1.12, 1.0, 1.04) if spec is None or spec.method == "none" else spec.red_cell
    seen = chroma(colour)
    return bool(np.linalg.norm(seen - chroma(glass)) <= np.linalg.norm(seen - chroma(red)))


def _is_red(red: tuple[float, ...], glass: tuple[float, ...] | None) -> bool:
    """Red cells absorb green more than red, compared with the glass beside them.

    The ratio of the two red/green ratios is what a gain leaves unchanged (and a gamma keeps
    on the same side of 1); without glass, red must not be far below green.
    """
    if glass is None:
        return red[0] >= 0.85 * red[1]
    return red[0] / max(red[1], 1.0) > RED_MARGIN * glass[0] / max(glass[1], 1.0)


def _red_cell_mask(green: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Cell pixels without the stained nuclei: the upper half of the cells' green values."""
    cells = _thinned(cells)
    n = np.count_nonzero(cells)
    if n <= 16:
        return cells
    return cells & (green >= _hist_median(histogram(green, cells), n))


def _thinned(mask: np.ndarray) -> np.ndarray:
    """Every k-th set pixel of a bool mask (raster order), at most about `_MAX_PIXELS` set."""
    n = np.count_nonzero(mask)
    step = max(1, n // _MAX_PIXELS)
    if step == 1:
        return mask
    out = np.zeros(mask.size, bool)
    out[np.flatnonzero(mask)[::step]] = True
    return out.reshape(mask.shape)


def _masked_median(planes: tuple[np.ndarray, ...], mask: np.ndarray) -> tuple[float, float, float]:
    """Per-channel median of the (thinned) pixels under a bool mask, as `np.median`."""
    mask = _thinned(mask)
    n = np.count_nonzero(mask)
    r, g, b = (_hist_median(histogram(p, mask), n) for p in planes)
    return (r, g, b)


def _hist_median(counts: np.ndarray, n: int) -> float:
    """`np.median` of the `n` uint8 values counted in `counts` (the mean of the two middle
    values for an even count)."""
    if n == 0:
        return float("nan")
    below = np.cumsum(counts)
    lo, hi = np.searchsorted(below, [(n - 1) // 2, n // 2], side="right")
    return (float(lo) + float(hi)) / 2
