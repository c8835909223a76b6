"""`wbc-edge calibrate`: measure a camera on its microscope from a few frames of a smear.

Per frame: the colour references (glass, red cells) as this camera sees them, the scale
from the red cells after colour normalisation, and the focus. The medians over the frames
that showed both references and red cells make a `CameraProfile`; a picture shows what was
measured (the frame as captured and normalised, the red-cell mask and the red-cell size
found, drawn as a circle).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from wbc_edge.core.colour import correct_colour, median_colour, split_regions
from wbc_edge.core.errors import WbcError
from wbc_edge.core.field import RBC_DIAMETER
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.edge_app.profile import CameraProfile
from wbc_edge.edge_app.quality import FOCUS_FRACTION, focus_measure
from wbc_edge.edge_app.scale import RBC_UM, estimate_scale

DEFAULT_FRAMES = 8


@dataclass
class Calibration:
    """The per-frame measurements and the profile made from them."""

    profile: CameraProfile
    used: int  # frames that gave every measurement
    seen: int  # frames read
    problems: list[str] = field(default_factory=list)  # why the other frames were not used
    example: np.ndarray | None = None  # a frame that was used (RGB), for the picture

    def format(self) -> str:
        p = self.profile
        across = p.scale * RBC_DIAMETER  # a red cell's diameter in camera px
        um = RBC_UM / across
        lines = [
            f"calibrated on {self.used} of {self.seen} frames ({p.frame_size[0]}x"
            f"{p.frame_size[1]}):",
            f"  scale       {p.scale:.3f} camera px per training px "
            f"(a red cell is {across:.1f} px across; {um:.3f} µm/px)",
            f"  glass       RGB {_rgb(p.background)}",
            f"  red cells   RGB {_rgb(p.red_cell)}",
            f"  focus       {p.focus:.0f} "
            f"(frames below {FOCUS_FRACTION * p.focus:.0f} will be flagged)",
        ]
        lines += [f"  skipped: {problem}" for problem in self.problems[:5]]
        if len(self.problems) > 5:
            lines.append(f"  ... and {len(self.problems) - 5} more skipped frames")
        return "\n".join(lines)


def calibrate(
    frames: Iterable[tuple[str, np.ndarray | None, str | None]],
    spec: PreprocessSpec,
    max_frames: int = DEFAULT_FRAMES,
    source: str = "",
) -> Calibration:
    """Measure up to `max_frames` usable frames of (name, rgb or None, error or None)."""
    if spec.colour.method == "none":
        raise WbcError("this bundle has no colour step to calibrate (trained with --colour none)")
    scales, bgs, reds, focus = [], [], [], []
    problems: list[str] = []
    seen, size, example = 0, None, None
    for name, rgb, error in frames:
        if len(scales) >= max_frames:
            break
        seen += 1
        if rgb is None:
            problems.append(f"{name}: {error}")
            continue
        if size is not None and rgb.shape[1::-1] != size:
            problems.append(f"{name}: {rgb.shape[1]}x{rgb.shape[0]}, not {size[0]}x{size[1]}")
            continue
        corrected, ill = correct_colour(rgb, spec.colour)
        est = estimate_scale(corrected)
        missing = [*(ill.flags if ill is not None else []), *([] if est else ["no_scale"])]
        if missing:
            problems.append(f"{name}: {', '.join(missing)}")
            continue
        size = size or rgb.shape[1::-1]
        example = rgb if example is None else example
        scales.append(est.scale)
        bgs.append(ill.background)
        reds.append(ill.red_cell)
        focus.append(focus_measure(corrected, est.scale))
    if not scales:
        why = f" ({problems[0]})" if problems else ""
        raise WbcError(f"no frame showed both empty glass and red cells{why}", source or None)
    profile = CameraProfile(
        scale=float(np.median(scales)),
        background=median_colour(bgs),  # type: ignore[arg-type]  (not None: frames were kept)
        red_cell=median_colour(reds),  # type: ignore[arg-type]
        focus=float(np.median(focus)),
        frames=len(scales),
        frame_size=(int(size[0]), int(size[1])),
        source=source,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return Calibration(profile, len(scales), seen, problems, example)


def picture(cal: Calibration, spec: PreprocessSpec) -> np.ndarray:
    """RGB picture: the frame as captured | normalised | its red-cell mask, with the size."""
    rgb = cal.example
    if rgb is None:
        raise WbcError("no frame to draw")
    corrected, _ = correct_colour(rgb, spec.colour)
    mask = split_regions(corrected).cells
    panel = np.repeat((mask * 200 + 30).astype(np.uint8)[:, :, None], 3, axis=2)
    d = cal.profile.scale * RBC_DIAMETER
    h, w = rgb.shape[:2]
    centre = (min(w - 1, round(0.6 * d)), min(h - 1, round(0.6 * d)))  # top left, off the cell
    for p in (corrected, panel):
        cv2.circle(p, centre, round(d / 2), (255, 40, 40), max(2, round(d / 30)))
    row = np.concatenate([rgb, corrected, panel], axis=1)
    k = min(1.0, 1800 / row.shape[1])
    if k < 1.0:
        row = cv2.resize(row, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    band = np.full((70, row.shape[1], 3), 255, np.uint8)
    texts = [
        "as captured | colour-normalised | cells (red circle: one red cell as measured)",
        f"scale {cal.profile.scale:.3f} camera px per training px; red cell {d:.0f} px; "
        f"glass {_rgb(cal.profile.background)}; red cells {_rgb(cal.profile.red_cell)}",
    ]
    for i, text in enumerate(texts):
        cv2.putText(band, text, (8, 26 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    return np.concatenate([band, row], axis=0)


def _rgb(v: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{x:.0f}" for x in v) + ")"
