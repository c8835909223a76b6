"""Where the stage moved: global motion between frames by phase correlation, and field changes.

The live count follows each cell from frame to frame. When the technician moves the stage, the
whole view shifts: `FieldMotion` measures that shift (phase correlation of a small grey copy of
each frame, `cv2.phaseCorrelate`), so the tracker moves its boxes with the slide and a cell
sliding across the view keeps one track. A jump to another field (or a move too fast for the
frames to overlap) shows no peak: the tracks of the old field are counted and closed, so none
carries over into the new field.

A single frame that matches nothing (blur while the stage moves, a jump) is `unsure`: its
cells are not tracked. If the next frame matches the field before it, the field goes on;
if it matches the unsure frame instead, or `CONFIRM` frames in a row match nothing, the field
changed at the first unsure frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_WIDTH = 160  # frames are compared at about this width
# A peak below this: no common content (BCCD, 30 pairs: other fields <= 0.15; the same field
# shifted by 30 % of the frame, or motion-blurred, >= 0.3).
MIN_RESPONSE = 0.2
MAX_SHIFT = 0.6  # shifts larger than this share of the frame leave too little overlap
CONFIRM = 3  # unsure frames in a row that make a new field without a match


@dataclass(frozen=True)
class Motion:
    """How frame `i` relates to the field before it.

    `kind`: `same` (moved by `shift`, frame px: where the last frame's content is now),
    `new` (a new field starts with this frame) or `unsure` (decided by the next frames).
    """

    kind: str
    shift: tuple[float, float] = (0.0, 0.0)
    response: float = 0.0


class FieldMotion:
    """Phase correlation of each frame with the last frame of the current field."""

    def __init__(self, width: int = WORK_WIDTH, min_response: float = MIN_RESPONSE) -> None:
        self.width = width
        self.min_response = min_response
        self._ref: np.ndarray | None = None  # last frame accepted into the field
        self._candidate: np.ndarray | None = None  # the first unsure frame since then
        self._unsure = 0
        self._factor = 1.0
        self._window: np.ndarray | None = None
        self.fields = 0  # field changes seen

    def update(self, rgb: np.ndarray) -> Motion:
        """The motion of this frame relative to the current field."""
        small = self._small(rgb)
        if self._ref is None:
            self._ref = small
            self.fields = 1
            return Motion("new")
        shift, response = self._match(self._ref, small)
        if shift is not None:
            self._ref, self._candidate, self._unsure = small, None, 0
            return Motion("same", shift, response)
        if self._candidate is not None:
            shift, response = self._match(self._candidate, small)
            if shift is not None or self._unsure + 1 >= CONFIRM:
                return self._new_field(small, response)
        else:
            self._candidate = small
        self._unsure += 1
        return Motion("unsure", response=response)

    def _new_field(self, small: np.ndarray, response: float) -> Motion:
        self._ref, self._candidate, self._unsure = small, None, 0
        self.fields += 1
        return Motion("new", response=response)

    def _match(self, a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float] | None, float]:
        """(shift in frame px, response), or (None, response) when `b` does not overlap `a`."""
        if a.shape != b.shape:
            return None, 0.0
        (dx, dy), response = cv2.phaseCorrelate(a, b, self._window)
        h, w = a.shape
        far = abs(dx) > MAX_SHIFT * w or abs(dy) > MAX_SHIFT * h
        if response < self.min_response or far:
            return None, float(response)
        return (dx * self._factor, dy * self._factor), float(response)

    def _small(self, rgb: np.ndarray) -> np.ndarray:
        """Green channel (the stain's contrast) at about `width`, float32, mean removed."""
        h, w = rgb.shape[:2]
        self._factor = max(1.0, w / self.width)
        size = (max(8, round(w / self._factor)), max(8, round(h / self._factor)))
        green = cv2.resize(np.ascontiguousarray(rgb[:, :, 1]), size, interpolation=cv2.INTER_AREA)
        small = green.astype(np.float32)
        small -= float(small.mean())
        if self._window is None or self._window.shape != small.shape:
            self._window = cv2.createHanningWindow(size, cv2.CV_32F)
        return small
