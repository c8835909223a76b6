"""The light of a run: one camera's glass and red-cell colours, pooled over its first frames.

A camera's lamp and white balance are the same for every frame it takes, so the colour step's
references are measured once per run, not per frame: one frame's own estimate is noisy (a
crop filled by its white cell shows little glass), and a model reads a noisy colour as another
cell type. `RunLight` keeps the median of the first `CALIBRATION_FRAMES` frames' glass and
red cells (`core.colour.pooled_illumination`; frames without glass or red cells add what they
show), then fixes it, so the table cannot change under a count; later frames are re-measured
and a drift is reported, never silently followed (as `edge_app.scale.RunScale` does for the
scale). Until a reference has been seen in any frame, a frame's own estimate stands in, and
`describe` says so. A camera profile's references, when given, are used from the first frame.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from wbc_edge.core.colour import Illumination, colour_lut, pooled_illumination
from wbc_edge.core.preprocess_spec import ColourSpec

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 16  # frames whose median fixes a run's light
DRIFT = 0.12  # recent frames' median glass this far (relative, any channel) from the run's


class RunLight:
    """One colour table for a run: pooled over its first frames, then fixed; drift reported."""

    def __init__(
        self, spec: ColourSpec, fixed: Illumination | None = None, origin: str = ""
    ) -> None:
        """`fixed` (a camera profile's references: `origin` says which) skips the estimate."""
        self.spec = spec
        self.fixed = fixed
        self.origin = origin if fixed is not None else ""
        self._first: list[Illumination] = []
        self._recent: deque[Illumination] = deque(maxlen=CALIBRATION_FRAMES)
        self.drift: float | None = None
        self._lut: np.ndarray | None = None
        self._lut_of: Illumination | None = None
        self._read_ahead = False

    @property
    def value(self) -> Illumination | None:
        """The run's light now (None until a frame has shown glass or red cells)."""
        if self.fixed is not None:
            return self.fixed
        pooled = pooled_illumination(self._first)
        return None if pooled.background is None and pooled.red_cell is None else pooled

    def table(self, seen: Illumination, observe: bool = True) -> np.ndarray | None:
        """The colour table for a frame whose own light is `seen` (counted towards the run's
        when `observe`). A reference no frame has shown yet is taken from this frame."""
        if observe:
            self._observe(seen)
        run = self.value
        used = Illumination(
            (run.background if run else None) or seen.background,
            (run.red_cell if run else None) or seen.red_cell,
        )
        if used != self._lut_of:
            self._lut, self._lut_of = colour_lut(used, self.spec), used
        return self._lut

    def prime(self, frames: list[Illumination]) -> None:
        """Fix the run's light from its first frames, measured before any is counted (a
        folder or a video, whose frames can be read ahead); fewer than `CALIBRATION_FRAMES`
        are enough when that is all the run has."""
        if self.fixed is not None or not frames:
            return
        self._first.extend(frames[:CALIBRATION_FRAMES])
        self._read_ahead = True
        self._fix(logging.DEBUG)  # the summary says it; a live run's log says when it is fixed

    def _observe(self, seen: Illumination) -> None:
        if self.fixed is None:
            self._first.append(seen)
            if len(self._first) >= CALIBRATION_FRAMES and not self._fix():
                self._first.pop(0)  # nothing seen yet: keep looking, in bounded memory
            return
        if seen.background is None:
            return
        self._recent.append(seen)
        recent = pooled_illumination(self._recent).background
        if recent is None or self.fixed.background is None or len(self._recent) < 3:
            return
        off = float(np.max(np.abs(np.asarray(recent) / np.asarray(self.fixed.background) - 1)))
        self.drift = off if off > DRIFT else None

    def _fix(self, level: int = logging.INFO) -> bool:
        """Fix the pooled light of the first frames if they showed glass or red cells."""
        pooled = pooled_illumination(self._first)
        if pooled.background is None and pooled.red_cell is None:
            return False
        self.fixed, self.origin = pooled, self._measured()
        log.log(level, "%s", self.describe())
        return True

    def _measured(self) -> str:
        if len(self._first) == 1:
            return "one frame's own estimate: no other frames to pool"
        n = len(self._first)
        frames = "frame" if n == 1 else "frames"
        if self._read_ahead:
            return f"pooled over {n} {frames} read before counting"
        return f"pooled over the first {n} {frames}"

    def describe(self) -> str:
        """One line for the log and the summary."""
        value = self.value
        if value is None:
            return "light: not measured (no frame showed glass or red cells)"
        how = self.origin or f"{self._measured()}, still measuring"
        glass = "none seen" if value.background is None else _rgb(value.background)
        red = "none seen" if value.red_cell is None else _rgb(value.red_cell)
        line = f"light: glass {glass}, red cells {red} ({how})"
        if self.drift is not None:
            line += (
                f"; recent frames' glass differs by {100 * self.drift:.0f} %: "
                "another lamp or white balance? (start a new run)"
            )
        return line


def _rgb(c: tuple[float, float, float]) -> str:
    return "RGB " + "/".join(f"{v:.0f}" for v in c)
