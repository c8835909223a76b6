"""Scale from the image: camera pixels per training pixel, with the red cell as the ruler.

In a colour-normalised image the cells are the pixels darker in green than the glass
(`core.colour.split_regions`). Their blobs, holes filled (a red cell's pale centre) and
white cells left out, are opened with discs of growing radius (a granulometry): the
diameter at which half their area is gone is the red cells' size, whether they lie alone
or in clumps. The same measurement on the training images gives `TRAINING_RBC_DIAMETER`,
so `scale = measured / TRAINING_RBC_DIAMETER` needs no other constant.

`RunScale` keeps one scale for a whole run: the median of the first frames' estimates,
then fixed, so a count cannot jump; later frames are re-measured now and then and a drift
is reported, never silently followed.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from wbc_edge.core.colour import Regions, split_regions
from wbc_edge.core.nucleus import stain_mask
from wbc_edge.core.preprocess_spec import NucleusParams

log = logging.getLogger(__name__)

# The granulometry diameter of the red cells in the Kaggle TRAIN crops (median over 400
# images; benchmarks/robustness.py --measure-reference prints it). A red cell is about
# 7.5 µm across.
TRAINING_RBC_DIAMETER = 38.2
RBC_UM = 7.5
WBC_STAIN_SHARE = 0.1  # a blob this much stained is a white cell, not a red one
MIN_CELL_SHARE = 0.05  # cells must cover this share of the image for an estimate
WORK_WIDTH = 200  # the mask is measured at about this width
STEP = 1.08  # ratio between successive disc radii
MEASURED_SCALE_RANGE = (
    0.2,
    12.0,
)  # a measurement outside it is no red cell (core.limits.SCALE_RANGE: what --scale accepts)
CALIBRATION_FRAMES = 16  # frames whose median fixes a run's scale (BCCD: within 11 % of all 364)
RECHECK_EVERY = 25  # frames between re-measurements once the scale is fixed
DRIFT = 0.15  # a re-measured median this far off the fixed scale is reported
# A run of one image (benchmarks/single_image_scale.py measures the choice on BCCD): its own
# estimate is used when the estimates of its four halves (left, right, top, bottom) agree
# within SINGLE_IMAGE_SPREAD of it (BCCD: those frames are at most 14 % off their camera's
# pooled scale); else the training scale, unless the estimate is more than SINGLE_IMAGE_FAR
# off it (another magnification shows even through that noise).
SINGLE_IMAGE_SPREAD = 0.25
SINGLE_IMAGE_FAR = 0.35


@dataclass(frozen=True)
class ScaleEstimate:
    """Red-cell diameter in image pixels and the scale (camera px per training px) it gives."""

    rbc_diameter_px: float
    scale: float


def estimate_scale(rgb: np.ndarray, regions: Regions | None = None) -> ScaleEstimate | None:
    """The scale of a colour-normalised RGB image from its red cells; None if it shows none."""
    d = red_cell_diameter(rgb, regions)
    if d is None:
        return None
    scale = d / TRAINING_RBC_DIAMETER
    if not MEASURED_SCALE_RANGE[0] <= scale <= MEASURED_SCALE_RANGE[1]:
        return None
    return ScaleEstimate(d, scale)


def red_cell_diameter(rgb: np.ndarray, regions: Regions | None = None) -> float | None:
    """Granulometry diameter of the red cells in image pixels (None: too few cells)."""
    regions = split_regions(rgb) if regions is None else regions
    mask = _filled(regions.cells.astype(np.uint8))
    mask = _without_white_cells(mask, stain_mask(rgb, NucleusParams()))
    h, w = mask.shape
    if mask.sum() < MIN_CELL_SHARE * max(1, int(regions.usable.sum())):
        return None
    f = max(1.0, w / WORK_WIDTH)
    small = cv2.resize(mask, (round(w / f), round(h / f)), interpolation=cv2.INTER_NEAREST)
    return _half_area_diameter(small) * f if small.any() else None


class RunScale:
    """One scale for a run: the median of the first frames, then fixed; drift is reported."""

    def __init__(self, fixed: float | None = None, origin: str | None = None) -> None:
        """`fixed` (from --scale or a camera profile: `origin` says which) skips the estimate
        but not the re-checks."""
        self.fixed = fixed
        self.origin = origin if fixed is not None else None
        self._first: list[float] = []
        self._recent: deque[float] = deque(maxlen=CALIBRATION_FRAMES)
        self.frames = 0
        self.drift: float | None = None  # the last re-measured median that drifted

    @property
    def estimates(self) -> list[float]:
        """The first frames' estimates the run's scale is the median of."""
        return list(self._first)

    def prime(self, estimates: list[float | None]) -> None:
        """Fix the scale to the median of the run's first frames' estimates, measured before
        any frame is classified (a folder or a video, read ahead), so the first frames' scale
        never moves."""
        found = [e for e in estimates if e is not None][:CALIBRATION_FRAMES]
        if self.fixed is None and found:
            n = len(found)
            self._first = found
            why = f"measured from the red cells of {n} frames read before counting"
            self.fix(float(np.median(found)), why)

    def fix(self, scale: float, origin: str) -> None:
        """Use `scale` for the rest of the run (re-checked like a given one); the summary says
        which, so the log says it only with --verbose."""
        self.fixed, self.origin = scale, origin
        log.debug("%s", self.describe())

    @property
    def value(self) -> float | None:
        """The scale to use now (None until a frame has shown red cells)."""
        if self.fixed is not None:
            return self.fixed
        return float(np.median(self._first)) if self._first else None

    def due(self) -> bool:
        """Whether the next frame will be measured (calibrating, or a re-check)."""
        return self.fixed is None or (self.frames + 1) % RECHECK_EVERY == 0

    def observe(self, rgb: np.ndarray | None) -> float | None:
        """Measure this colour-normalised frame if it is `due`; returns the scale to use for
        it. `rgb` may be None for a frame that is not due (it is only counted)."""
        calibrating = self.fixed is None
        due = self.due()
        self.frames += 1
        if due:
            if rgb is None:
                raise ValueError("RunScale.observe: this frame is due to be measured")
            est = estimate_scale(rgb)
            if est is not None:
                self._add(est.scale, calibrating)
        return self.value

    def _add(self, scale: float, calibrating: bool) -> None:
        if calibrating:
            self._first.append(scale)
            if len(self._first) >= CALIBRATION_FRAMES:
                self.fixed = float(np.median(self._first))
                log.info("%s", self.describe())
            return
        self._recent.append(scale)
        now = float(np.median(self._recent))
        off = abs(now / self.fixed - 1.0) if self.fixed else 0.0
        self.drift = now if len(self._recent) >= 3 and off > DRIFT else None

    def describe(self) -> str:
        """One line for the log and the summary."""
        if self.value is None:
            return "scale: not measured (no red cells seen)"
        how = self.origin or f"measured from the red cells of {len(self._first)} frame(s)"
        line = f"scale: {self.value:.3g} camera px per training px ({how})"
        if self.drift is not None:
            line += f"; recent frames measure {self.drift:.3g}: magnification or camera changed?"
        return line


def single_image_scale(rgb: np.ndarray, training: float) -> tuple[float, str, float | None]:
    """The scale of a run of one colour-normalised image, why, and its own estimate.

    The image's own estimate when the estimates of its halves agree with it (a reliable
    measurement), else the training scale unless the estimate is far from it."""
    whole = estimate_scale(rgb)
    if whole is None:
        return training, "the training scale: the image shows no red cells to measure", None
    est = whole.scale
    h, w = rgb.shape[:2]
    halves = (rgb[:, : w // 2], rgb[:, w // 2 :], rgb[: h // 2], rgb[h // 2 :])
    parts = [p.scale for p in map(estimate_scale, halves) if p is not None]
    spread = (max(parts) - min(parts)) / est if len(parts) >= 2 else float("inf")
    if spread <= SINGLE_IMAGE_SPREAD:
        return est, "measured from the red cells of this one image", est
    if abs(est / training - 1.0) > SINGLE_IMAGE_FAR:
        return est, "measured from the red cells of this one image (unsteady, but far off)", est
    why = (
        f"the training scale: this one image's estimate, {est:.3g}, is unsteady "
        f"(its halves differ by {100 * min(spread, 9.99):.0f} %)"
    )
    return training, why, est


def _half_area_diameter(mask: np.ndarray) -> float:
    """Twice the disc radius whose opening removes half of the mask's area (interpolated)."""
    total = float(mask.sum())
    prev_r, prev_a = 0.0, 1.0
    r = 1.5
    while r < min(mask.shape) / 2:
        k = 2 * round(r) + 1
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        a = float(cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc).sum()) / total
        radius = k / 2.0
        if a <= 0.5:
            t = (prev_a - 0.5) / max(prev_a - a, 1e-9)
            return 2.0 * (prev_r + t * (radius - prev_r))
        prev_r, prev_a = radius, a
        r *= STEP
    return 2.0 * prev_r


def _without_white_cells(mask: np.ndarray, stain: np.ndarray) -> np.ndarray:
    """The mask less every blob whose stained share is `WBC_STAIN_SHARE` or more.

    Red-cell clumps with a stained speck (a platelet lying on them) stay in.
    """
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    area = np.bincount(labels.ravel(), minlength=n)
    stained = np.bincount(labels[stain > 0], minlength=n)
    keep = stained < WBC_STAIN_SHARE * area
    keep[0] = False
    return keep[labels].astype(np.uint8)


def _filled(mask: np.ndarray) -> np.ndarray:
    """Each blob with its holes filled (outer contours drawn solid)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out
