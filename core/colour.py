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
    brightest = cv2.max(cv2.max(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])
    usable = brightest > DARK
    green = rgb[:, :, 1]
    values = _subsample(green[usable])
    none = np.zeros_like(usable)
    if values.size < 64:
        return Regions(usable, none, none)
    t = _otsu(values)
    upper = values[values > t]
    if np.mean(values <= t) < NUCLEUS_SHARE and upper.size >= 64:
        t2 = _otsu(upper)
        hi, lo = upper[upper > t2], upper[upper <= t2]
        if hi.size and lo.size and hi.mean() >= MIN_CONTRAST * lo.mean():
            t = t2
    glass = usable & (green > t)
    return Regions(usable, glass, usable & ~glass)


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
    n = max(1, np.count_nonzero(regions.usable))
    glass_px = _subsample(rgb[regions.glass])
    cell_px = _red_cell_pixels(rgb, regions)
    glass_frac = np.count_nonzero(regions.glass) / n
    red_frac = np.count_nonzero(regions.cells) / n
    background = _median(glass_px) if glass_frac >= MIN_FRACTION else None
    if background is not None and min(background) >= CLIPPED:
        background = None  # the glass is clipped in every channel: its colour is unknown
    red = _median(cell_px) if red_frac >= MIN_FRACTION and len(cell_px) else None
    if background is not None and red is not None and background[1] < MIN_CONTRAST * red[1]:
        # no two classes: one material only (all glass, or all cells), told apart by colour
        if _looks_like_glass(_median(_subsample(rgb[regions.usable])), spec):
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
    x = np.arange(256, dtype=np.float64)
    if ill.background is not None and ill.red_cell is not None:
        bg, red = np.asarray(ill.background, np.float64), np.asarray(ill.red_cell, np.float64)
        seen = np.log(np.maximum(bg, 1.0) / np.maximum(red, 1.0))
        ref = np.log(ref_bg / ref_red)
        clipped = bg >= CLIPPED  # over half the glass at 255 in this channel: its median is lost
        g = shared_gamma(seen[~clipped], ref[~clipped]) if (~clipped).any() else 1.0
        bg = np.where(clipped, red * np.exp(ref / g), bg)  # where the glass would lie
        lut = ref_bg[:, None] * (x[None, :] / bg[:, None]) ** g
    elif ill.background is not None or ill.red_cell is not None:
        seen, ref = (
            (np.asarray(ill.background), ref_bg)
            if ill.background is not None
            else (np.asarray(ill.red_cell), ref_red)
        )
        gain = np.clip(ref / np.maximum(seen, 1.0), *GAIN_RANGE)
        lut = gain[:, None] * x[None, :]
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
    ill = measure_illumination(rgb, spec) if ill is None else ill
    used = ill
    if fallback is not None and (ill.background is None or ill.red_cell is None):
        used = Illumination(
            ill.background or fallback.background,
            ill.red_cell or fallback.red_cell,
        )
    return colour_lut(used, spec), ill


def measure_illumination(
    rgb: np.ndarray, spec: ColourSpec, rounds: int = ITERATIONS
) -> Illumination:
    """Glass and red-cell colours of an image, the split refined on the corrected image.

    Otsu's split is made where it works best, on the image as the training data looks: each
    round corrects the image with the references so far, splits the corrected image, and
    measures the references again on the original pixels of that split.
    """
    rgb = thumbnail(rgb)
    ill = estimate_illumination(rgb, spec=spec)
    for _ in range(rounds):
        lut = colour_lut(ill, spec)
        if lut is None or not (ill.background and ill.red_cell):
            break
        again = estimate_illumination(rgb, split_regions(apply_lut(rgb, lut)), spec)
        if again == ill:
            break  # a fixed point: every further round would give the same again
        ill = again
    return ill


def thumbnail(rgb: np.ndarray, pixels: int = STATS_PIXELS) -> np.ndarray:
    """Every k-th pixel in each direction, at most about `pixels` of them (same statistics)."""
    k = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / pixels))))
    return np.ascontiguousarray(rgb[::k, ::k]) if k > 1 else rgb


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
    med = lambda v: [round(float(x), 2) for x in np.median(np.asarray(v), axis=0)]  # noqa: E731
    return med(bgs), med(reds)


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


def _red_cell_pixels(rgb: np.ndarray, regions: Regions) -> np.ndarray:
    """Cell pixels without the stained nuclei: the upper half of the cells' green values."""
    px = _subsample(rgb[regions.cells])
    if len(px) == 0:
        return px
    green = px[:, 1]
    return px[green >= _median_u8(green)] if len(px) > 16 else px


def _subsample(px: np.ndarray) -> np.ndarray:
    step = max(1, len(px) // _MAX_PIXELS)
    return px[::step]


def _median(px: np.ndarray) -> tuple[float, float, float]:
    """Per-channel median of (N, 3) uint8 pixels (as `np.median`, from histograms)."""
    px = px.reshape(-1, 3)
    r, g, b = (_median_u8(px[:, c]) for c in range(3))
    return (r, g, b)


def _median_u8(values: np.ndarray) -> float:
    """`np.median` of uint8 values, counted instead of sorted (the mean of the two middle
    values for an even count)."""
    n = len(values)
    if n == 0:
        return float("nan")
    below = np.cumsum(np.bincount(values, minlength=256))
    lo, hi = np.searchsorted(below, [(n - 1) // 2, n // 2], side="right")
    return (float(lo) + float(hi)) / 2
