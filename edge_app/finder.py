"""Everything a frame goes through before the model: colour, scale, quality, find, crop.

`CellFinder` looks at as few pixels as it can. The colour step is measured on a thumbnail
and its table applied only to what is looked at: the frame shrunk once to the training
scale (where the quality is judged and the nuclei are found) and each cell's crop (cut from
the frame as captured, then corrected: a table acts pixel by pixel, so the crop's pixels are
those of a corrected frame). The whole frame is corrected only when the run's scale is
measured from it (the first frames, then every 25th: `edge_app.scale.RunScale`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from wbc_edge.core.colour import Illumination, apply_lut, colour_table, measure_illumination
from wbc_edge.core.field import DEFAULT_FIELD_SCALE, Box, find_cells
from wbc_edge.core.gallery import model_crop
from wbc_edge.core.nucleus import Nucleus, locate_cell, working_image
from wbc_edge.core.preprocess import corrected_window, finish_crop, normalise
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.edge_app.light import RunLight
from wbc_edge.edge_app.morphology import Morphology, measure_window
from wbc_edge.edge_app.profile import LAMP_DRIFT, CameraProfile, check_frame_size
from wbc_edge.edge_app.quality import FrameQuality, assess_frame
from wbc_edge.edge_app.scale import (
    CALIBRATION_FRAMES,
    RunScale,
    estimate_scale,
    single_image_scale,
)

MODES = ("field", "cell")
DEFAULT_SCALE = {"field": DEFAULT_FIELD_SCALE, "cell": 1.0}
STAGES = ("colour", "scale", "quality", "find")


@dataclass
class FoundCells:
    """The white cells of one frame before classification.

    `boxes`/`nuclei` pair up (None: the whole image is the cell, or no nucleus is needed);
    `timings` are the seconds of `STAGES`. `inputs()` and `crops()` cut the cells, once.
    """

    boxes: list[Box | None]
    nuclei: list[Nucleus | None]
    quality: FrameQuality
    scale: float
    frame: np.ndarray  # as captured
    lut: np.ndarray | None  # its colour table (None: nothing to correct)
    spec: PreprocessSpec  # after the colour step: the table is applied to each crop
    field_mode: bool
    timings: dict[str, float] = field(default_factory=dict)
    _crops: list[np.ndarray] | None = None
    _windows: dict[int, tuple[np.ndarray, tuple[int, int]]] = field(default_factory=dict)

    def inputs(self) -> np.ndarray:
        """The model inputs (N, H, W, 3) float32, one per cell."""
        spec = self.spec
        if not self.nuclei:
            return np.zeros((0, spec.height, spec.width, 3), np.float32)
        return normalise(np.stack(self._cut()), spec)

    def measure(self, i: int, scale_known: bool) -> Morphology | None:
        """What `edge_app.morphology` measures of cell `i` (None: no nucleus to measure)."""
        nucleus, spec = self.nuclei[i], self.spec
        if nucleus is None:
            return None
        window, origin = self._window(i, nucleus)
        return measure_window(
            window, origin, nucleus, spec.nucleus, self.scale, spec.crop.size, scale_known
        )

    def crops(self, keep: list[int]) -> list[np.ndarray]:
        """The uint8 crops (model colour order) of cells `keep`, as the model saw them."""
        cut = self._cut()
        return [cut[i] for i in keep]

    def _cut(self) -> list[np.ndarray]:
        """Every cell's uint8 crop, cut and corrected once for the model and the report."""
        if self._crops is None:
            spec = self.spec
            self._crops = [
                finish_crop(self._window(i, n)[0], spec)
                if n is not None and spec.crop.method == "nucleus"
                else model_crop(self.frame, spec, self.scale, n, self.field_mode, self.lut)
                for i, n in enumerate(self.nuclei)
            ]
        return self._crops

    def _window(self, i: int, nucleus: Nucleus) -> tuple[np.ndarray, tuple[int, int]]:
        """Cell `i`'s crop window around its nucleus (`spec.crop.size` training px), colour
        corrected, and its top-left corner in the frame: cut once for the model's crop (of a
        nucleus-crop model) and the morphology."""
        if i not in self._windows:
            side = self.spec.crop.size * self.scale
            self._windows[i] = corrected_window(self.frame, nucleus.cx, nucleus.cy, side, self.lut)
        return self._windows[i]


class CellFinder:
    """Colour step, run scale, frame quality and cell finding for the frames of one run."""

    def __init__(
        self,
        spec: PreprocessSpec,
        mode: str = "field",
        scale: float | None = None,
        profile: CameraProfile | None = None,
        profile_path: str | None = None,
    ) -> None:
        """`scale` (given) or the profile's fixes the run's scale; else it is measured."""
        self.spec = spec
        self.mode = mode
        self.profile = profile
        self.profile_path = profile_path
        origin = "given" if scale is not None else None
        if scale is None and profile is not None:
            scale, origin = profile.scale, "the camera profile's"
        self.run_scale = RunScale(None if scale is None else float(scale), origin)
        fixed = profile.illumination if profile is not None else None
        self.light = RunLight(spec.colour, fixed, "the camera profile's")
        self.lamp_drift: float | None = None  # the last frame's glass vs the profile's
        self._crop_spec = spec.after_colour()  # the table is applied by the finder, once

    @property
    def scale(self) -> float:
        """The scale in use now (the mode's default until red cells have been seen)."""
        value = self.run_scale.value
        return DEFAULT_SCALE[self.mode] if value is None else value

    def find(self, rgb: np.ndarray, observe: bool = True) -> FoundCells:
        """The cells of one RGB uint8 frame; `observe=False` leaves the run's state alone."""
        if self.profile is not None:
            check_frame_size(self.profile, (rgb.shape[1], rgb.shape[0]), self.profile_path)
        clock = time.perf_counter
        t0 = clock()
        lut, ill = self._colour(rgb, observe)
        t1 = clock()
        if observe:
            due = self.run_scale.due()
            self.run_scale.observe(_apply(rgb, lut) if due else None)
        scale = self.scale
        t2 = clock()
        small = _apply(working_image(rgb, scale), lut)  # where cells are found (timed so)
        t3 = clock()
        small_scale = scale / max(1.0, scale)  # working px per training px
        baseline = self.profile.focus if self.profile is not None else None
        quality = assess_frame(rgb, small, ill, small_scale, baseline)
        if observe and self.profile is not None:
            self.lamp_drift = self.profile.lamp_drift(ill)
        t4 = clock()
        boxes, nuclei = self._cells(rgb, small, scale)
        t5 = clock()
        timings = {
            "colour": t1 - t0,
            "scale": t2 - t1,
            "quality": t4 - t3,
            "find": t3 - t2 + t5 - t4,  # the shrunk frame, the stain mask, the components
        }
        field_mode = self.mode == "field"
        return FoundCells(
            boxes, nuclei, quality, scale, rgb, lut, self._crop_spec, field_mode, timings
        )

    def prime_light(self, frames: list[np.ndarray]) -> None:
        """Measure the run's light on its first frames before any is counted (files); a light
        already fixed (a profile's, or primed before) measures nothing."""
        colour = self.spec.colour
        if colour.method != "none" and colour.estimate == "run" and self.light.fixed is None:
            self.light.prime([measure_illumination(rgb, colour) for rgb in frames])

    def prime_scale(self, frames: list[np.ndarray]) -> None:
        """Measure the run's scale on its first frames before any is counted (files), after
        `prime_light`: each frame colour-normalised with the run's light. A run of one image
        takes `single_image_scale`'s choice."""
        if self.run_scale.fixed is not None or not frames:
            return
        corrected = [_apply(rgb, self._colour(rgb, observe=False)[0]) for rgb in frames]
        if len(corrected) == 1:
            scale, why, _ = single_image_scale(corrected[0], DEFAULT_SCALE[self.mode])
            self.run_scale.fix(scale, why)
            return
        estimates = [estimate_scale(rgb) for rgb in corrected[:CALIBRATION_FRAMES]]
        self.run_scale.prime([None if e is None else e.scale for e in estimates])

    def describe_light(self) -> str | None:
        """The run's light, one line (None: the bundle measures each image on its own)."""
        colour = self.spec.colour
        if colour.method == "none" or colour.estimate != "run":
            return None
        return self.light.describe()

    def drift_warnings(self) -> list[str]:
        """What has drifted away from the run's scale or the camera profile, one line each."""
        out = []
        if self.run_scale.drift is not None:
            out.append(
                f"recent frames measure scale {self.run_scale.drift:.3g}, the run uses "
                f"{self.scale:.3g}: did the magnification or camera change? (recalibrate)"
            )
        if self.lamp_drift is not None and self.lamp_drift > LAMP_DRIFT:
            out.append(
                f"the lamp differs from the camera profile by {100 * self.lamp_drift:.0f} % "
                "(white balance, brightness or another lamp): recalibrate"
            )
        if self.light.drift is not None and self.profile is None:
            out.append(
                f"the lamp differs from the run's first frames by {100 * self.light.drift:.0f} % "
                "(white balance, brightness or another lamp): start a new run"
            )
        return out

    def _colour(
        self, rgb: np.ndarray, observe: bool
    ) -> tuple[np.ndarray | None, Illumination | None]:
        """The frame's colour table and its own light: the run's pooled light
        (`edge_app.light`), or, for a bundle that estimates per image, the frame's own (a
        profile filling a missing reference)."""
        colour = self.spec.colour
        if colour.method != "none" and colour.estimate == "run":
            seen = measure_illumination(rgb, colour)
            return self.light.table(seen, observe), seen
        fallback = self.profile.illumination if self.profile is not None else None
        return colour_table(rgb, colour, fallback=fallback)

    def _cells(
        self, rgb: np.ndarray, small: np.ndarray, scale: float
    ) -> tuple[list[Box | None], list[Nucleus | None]]:
        spec = self._crop_spec
        if self.mode == "field":
            cells = find_cells(rgb, spec, scale, small)
            return [c.box for c in cells], [c.nucleus for c in cells]
        if spec.crop.method != "nucleus":
            return [None], [None]
        nucleus = locate_cell(rgb, spec.nucleus, scale, small)
        return ([], []) if nucleus is None else ([None], [nucleus])


def _apply(rgb: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    return rgb if lut is None else apply_lut(rgb, lut)
