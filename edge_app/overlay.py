"""Draw the classified cells and the running count onto a frame (display and snapshots)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_app.classify import CellResult

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
    """
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    sx, sy = (w / source_size[0], h / source_size[1]) if source_size else (1.0, 1.0)
    thick = max(1, round(min(h, w) / 320))
    font = 0.4 * thick + 0.1
    for i, cell in enumerate(cells):
        if cell.box is None:
            continue
        x0, y0, x1, y1 = cell.box
        p0, p1 = (round(x0 * sx), round(y0 * sy)), (round(x1 * sx) - 1, round(y1 * sy) - 1)
        colour = _UNCERTAIN if cell.uncertain else _CERTAIN
        cv2.rectangle(out, p0, p1, colour, thick)
        track = tracks[i] if tracks and i < len(tracks) else None
        text = f"{cell.label} {cell.confidence:.2f}" + (f" #{track}" if track is not None else "")
        _label(out, text, (p0[0], max(p0[1] - 4, 12 * thick)), font, colour, thick)
    for k, line in enumerate(status):
        _label(out, line, (6, 16 * thick * (k + 1)), font, (0, 0, 0), thick)
    return out


def _label(
    img: np.ndarray, text: str, org: tuple[int, int], font: float, colour, thick: int
) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    x, y = org
    cv2.rectangle(img, (x, y - th - 2), (x + tw + 2, y + base), _TEXT_BG, -1)
    cv2.putText(img, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
