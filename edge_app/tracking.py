"""Following white cells from frame to frame while the stage stands still or moves.

`CellTracker` matches each frame's cells to the cells of the last few frames (boxes
overlapping by IoU >= 0.3; a cell may go unseen for a few frames). `StageTracker` adds the
stage: the tracker's boxes move with the slide (`edge_app.field_change.FieldMotion`), and a
new field closes every track of the old one, so no track carries over into another field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from wbc_edge.edge_app.field_change import FieldMotion, Motion

Box = tuple[int, int, int, int]


class TrackedCell(Protocol):
    box: Box | None
    probs: dict[str, float]


TRACK_IOU = 0.3
TRACK_MAX_AGE = 5  # frames a cell may go undetected and still be the same cell


@dataclass
class Track:
    """One white cell followed across frames."""

    id: int
    box: tuple[int, int, int, int]
    first_frame: int
    last_frame: int
    prob_sum: np.ndarray
    frames: int = 1

    def mean_probs(self) -> np.ndarray:
        return self.prob_sum / self.frames


@dataclass
class CellTracker:
    """Greedy IoU matching of this frame's cells to the cells of the last few frames."""

    classes: list[str]
    iou: float = TRACK_IOU
    max_age: int = TRACK_MAX_AGE
    active: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, frame: int, cells: list[TrackedCell]) -> list[tuple[int, bool]]:
        """(track id, is new) for each cell, in order."""
        pairs = sorted(
            (
                (_iou(c.box, t.box), i, j)
                for i, c in enumerate(cells)
                for j, t in enumerate(self.active)
                if c.box is not None
            ),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        taken: set[int] = set()
        for value, i, j in pairs:
            if value >= self.iou and i not in assigned and j not in taken:
                assigned[i] = self.active[j]
                taken.add(j)
        out = []
        for i, cell in enumerate(cells):
            probs = np.array([cell.probs[c] for c in self.classes], np.float64)
            track = assigned.get(i)
            if track is None:
                box = cell.box or (0, 0, 0, 0)
                track = Track(self.next_id, box, frame, frame, probs)
                self.next_id += 1
                self.active.append(track)
                out.append((track.id, True))
                continue
            track.box = cell.box or track.box
            track.last_frame = frame
            track.prob_sum += probs
            track.frames += 1
            out.append((track.id, False))
        return out

    def expire(self, frame: int) -> list[Track]:
        """Tracks not seen for more than max_age frames: they have left the view."""
        gone = [t for t in self.active if frame - t.last_frame > self.max_age]
        self.active = [t for t in self.active if t not in gone]
        return gone

    def finish(self) -> list[Track]:
        gone, self.active = self.active, []
        return gone

    def move(self, shift: tuple[float, float]) -> None:
        """Move every box with the slide (`shift`: frame px)."""
        dx, dy = round(shift[0]), round(shift[1])
        if dx or dy:
            for t in self.active:
                x0, y0, x1, y1 = t.box
                t.box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


class StageTracker:
    """Cells followed across frames and fields: `update` per frame returns each cell's
    (track id or None, is new) and the tracks that ended (to be counted)."""

    def __init__(self, classes: list[str]) -> None:
        self.cells = CellTracker(classes)
        self.motion = FieldMotion()
        self.last = Motion("new")

    @property
    def active(self) -> list[Track]:
        return self.cells.active

    @property
    def field(self) -> int:
        """The number of the current field (1, 2, ...)."""
        return self.motion.fields

    def update(
        self, frame: int, rgb: np.ndarray, cells: list[TrackedCell]
    ) -> tuple[list[tuple[int | None, bool]], list[Track]]:
        """Track this frame's cells; an unsure frame's cells are left untracked (None)."""
        self.last = motion = self.motion.update(rgb)
        ended: list[Track] = []
        if motion.kind == "new":
            ended += self.cells.finish()
        elif motion.kind == "same":
            self.cells.move(motion.shift)
        if motion.kind == "unsure":
            self.cells.update(frame, [])
            ids: list[tuple[int | None, bool]] = [(None, False)] * len(cells)
        else:
            ids = list(self.cells.update(frame, cells))
        return ids, ended + self.cells.expire(frame)

    def finish(self) -> list[Track]:
        return self.cells.finish()


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
