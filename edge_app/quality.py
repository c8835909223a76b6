"""Frame quality: is this frame fit to count from? Flags, never a silent guess.

Measured on every frame before its cells are counted:

- `over_exposed` / `under_exposed`: clipped highlights or a frame too dark to show colour;
- `out_of_focus`: the Laplacian's variance of the colour-normalised green channel at
  training scale (so cameras of any resolution compare) is below `FOCUS_MIN`, or below
  `FOCUS_FRACTION` of a camera profile's baseline;
- `no_background` / `no_red_cells`: the colour normalisation lacked one of its references
  (`core.colour`); with no red cells there is no scale and no colour check either.

Cells found in a frame with a *blocking* flag (under-exposed, out of focus, no red cells, or
nearly all of the frame clipped) are reported with the flag and left out of the differential
count; `no_background` and a little clipping only say the colour came from the red cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from wbc_edge.core.colour import (
    NO_BACKGROUND,
    NO_RED_CELLS,
    Illumination,
    histogram,
    thumbnail_step,
)
from wbc_edge.core.resample import shrink_by

OVER_EXPOSED = "over_exposed"
UNDER_EXPOSED = "under_exposed"
OUT_OF_FOCUS = "out_of_focus"
BLOCKING = frozenset({UNDER_EXPOSED, OUT_OF_FOCUS, NO_RED_CELLS})
ALL_FLAGS = (OVER_EXPOSED, UNDER_EXPOSED, OUT_OF_FOCUS, NO_BACKGROUND, NO_RED_CELLS)

CLIPPED_MAX = 0.05  # share of pixels with a channel at 255 that makes a frame over-exposed
CLIPPED_BLOCK = 0.85  # and this share (cells clipped too, not only the glass) unfit to count
DARK_P99 = 60  # the frame's 99th-percentile brightness below which it is too dark
FOCUS_MIN = 40.0  # Laplacian variance at training scale (BCCD frames: 5th percentile ~190)
FOCUS_FRACTION = 0.4  # of a camera profile's focus baseline
EXPOSURE_PIXELS = 20_000  # exposure is judged on a subsample of about this many pixels
_ERODE = np.ones((5, 5), np.uint8)  # the mask is eroded by this, off the rotation corners


@dataclass(frozen=True)
class FrameQuality:
    """What a frame is fit for: its flags and the measurements behind them."""

    flags: list[str] = field(default_factory=list)
    focus: float | None = None
    clipped: float = 0.0

    @property
    def blocking(self) -> bool:
        """True when the frame's cells must not be counted as if it were fine."""
        blown = OVER_EXPOSED in self.flags and self.clipped >= CLIPPED_BLOCK
        return blown or any(f in BLOCKING for f in self.flags)


def assess_frame(
    raw: np.ndarray,
    corrected: np.ndarray,
    ill: Illumination | None,
    scale: float,
    focus_baseline: float | None = None,
) -> FrameQuality:
    """Flags for one frame: `raw` as captured, `corrected` after the colour step (either at
    any size: `scale` is `corrected`'s pixels per training pixel)."""
    flags: list[str] = []
    k = thumbnail_step(raw.shape, EXPOSURE_PIXELS)
    px = raw[::k, ::k]  # a subsample: the same shares at a fraction of the cost
    brightest = cv2.max(cv2.max(px[:, :, 0], px[:, :, 1]), px[:, :, 2])
    counts = histogram(brightest)
    clipped = float(counts[255]) / brightest.size
    if clipped > CLIPPED_MAX:
        flags.append(OVER_EXPOSED)
    if _percentile_u8(counts, 99) < DARK_P99:
        flags.append(UNDER_EXPOSED)
    focus = focus_measure(corrected, scale)
    limit = FOCUS_MIN if focus_baseline is None else FOCUS_FRACTION * focus_baseline
    if focus < limit:
        flags.append(OUT_OF_FOCUS)
    if ill is not None:
        flags += ill.flags
    return FrameQuality(flags, focus, clipped)


def _percentile_u8(counts: np.ndarray, q: float) -> int:
    """The q-th percentile (nearest rank) of the uint8 values counted in `counts`."""
    below = np.cumsum(counts)
    return int(np.searchsorted(below, q / 100 * below[-1]))


def focus_measure(rgb: np.ndarray, scale: float) -> float:
    """Variance of the Laplacian of green at training scale, rotation corners left out."""
    green = cv2.extractChannel(rgb, 1)
    f = max(1.0, scale)
    if f > 1.05:
        green = shrink_by(green, f)
    lap = cv2.Laplacian(green, cv2.CV_32F, ksize=3)
    _, usable = cv2.threshold(green, 12, 1, cv2.THRESH_BINARY)
    inside = cv2.erode(usable, _ERODE)
    return _masked_variance(lap, inside)


def _masked_variance(values: np.ndarray, mask: np.ndarray) -> float:
    """Variance of float32 `values` where the uint8 `mask` is set (0.0 where it is nowhere).

    The sums are taken in float64 by OpenCV over `values` zeroed outside the mask (faster
    than `cv2.meanStdDev` with a mask; equal to `values[mask > 0].var()` to float rounding).
    """
    n = cv2.countNonZero(mask)
    if n == 0:
        return 0.0
    inside = cv2.copyTo(values, mask)  # zero elsewhere
    mean = cv2.sumElems(inside)[0] / n
    return max(0.0, cv2.norm(inside, cv2.NORM_L2SQR) / n - mean * mean)
