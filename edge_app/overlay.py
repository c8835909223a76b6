"""Draw the classified cells and the running count onto a frame (display and snapshots)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from wbc_edge.edge_app.classify import CellResult

_CERTAIN = (40, 200, 40)  # RGB
_UNCERTAIN = (240, 160, 0)
_TEXT_BG = (255, 255, 255)


def draw_cells(
    rgb: np.ndarray,
    cells: Sequence[CellResult],
    source_size: tuple[int, int] | None = None,
    tracks: Sequence[int | None] | None = None,
    status: Sequence[str] = (),
) -> np.ndarray:
    """A copy of `rgb` with each cell's box, label and confidence, and status lines on top.

    Boxes are in the coordinates of the frame of `source_size` (width, height), the frame
    that was classified; they are scaled to `rgb` (e.g. picamera2's larger main stream).
    Labels stay inside the image and off the status lines: above the box, else below it,
    else inside its top edge.
    """
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    sx, sy = (w / source_size[0], h / source_size[1]) if source_size else (1.0, 1.0)
    thick = max(1, round(min(h, w) / 320))
    font = 0.4 * thick + 0.1
    banner = [
        _label(out, line, (6, 16 * thick * (k + 1)), font, (0, 0, 0), thick)
        for k, line in enumerate(status)
    ]
    for i, cell in enumerate(cells):
        if cell.box is None:
            continue
        x0, y0, x1, y1 = cell.box
        p0, p1 = (round(x0 * sx), round(y0 * sy)), (round(x1 * sx) - 1, round(y1 * sy) - 1)
        colour = _UNCERTAIN if cell.uncertain else _CERTAIN
        cv2.rectangle(out, p0, p1, colour, thick)
        track = tracks[i] if tracks and i < len(tracks) else None
        text = f"{cell.label} {cell.confidence:.2f}" + (f" #{track}" if track is not None else "")
        org = label_origin(text, p0, p1, (w, h), font, thick, banner)
        _label(out, text, org, font, colour, thick)
    return out


def label_origin(
    text: str,
    p0: tuple[int, int],
    p1: tuple[int, int],
    size: tuple[int, int],
    font: float,
    thick: int,
    avoid: Sequence[Rect] = (),
) -> tuple[int, int]:
    """Where a box's label goes (text baseline origin): inside the image, off `avoid`."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    w, h = size
    x = max(0, min(p0[0], w - tw - 3))
    for y in (p0[1] - 4, p1[1] + th + 4, p0[1] + th + 4):  # above, below, inside the top
        rect = (x, y - th - 2, x + tw + 2, y + base)
        if rect[1] >= 0 and rect[3] < h and not any(_overlap(rect, a) for a in avoid):
            return x, y
    y = max(th + 2, min(p0[1] + th + 4, h - base - 1))
    if any(_overlap((x, y - th - 2, x + tw + 2, y + base), a) for a in avoid):
        y = max(a[3] for a in avoid) + th + 3  # below the status lines
    return x, y


Rect = tuple[int, int, int, int]


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _label(
    img: np.ndarray, text: str, org: tuple[int, int], font: float, colour, thick: int
) -> Rect:
    """Text on a white box; returns the box (x0, y0, x1, y1)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    x, y = org
    cv2.rectangle(img, (x, y - th - 2), (x + tw + 2, y + base), _TEXT_BG, -1)
    cv2.putText(img, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
    return x, y - th - 2, x + tw + 2, y + base
