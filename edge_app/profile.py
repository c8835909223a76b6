"""Camera profiles: what `wbc-edge calibrate` measured on one camera and microscope.

A profile (JSON) holds the scale (camera px per training px, from the red cells), the
colour references of the lamp (glass and red cells as this camera sees them) and a focus
baseline. `classify --profile` and `run --profile` use its scale instead of estimating one,
fill a frame's missing colour reference from it (a crowded field with no glass), and warn
when frames drift away from it (another lamp, focus or magnification).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.colour import Illumination
from wbc_edge.core.decode import MAX_PIXELS
from wbc_edge.core.errors import WbcError
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.preprocess_spec import light_problems
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.typed_json import decode_file, raise_problems
from wbc_edge.edge_app.scale import MEASURED_SCALE_RANGE

PROFILE_KIND = "wbc-edge camera profile"
PROFILE_BYTES = 64_000  # a profile is a few hundred bytes
# The focus measure is a variance of a 3x3 Laplacian of 8-bit green: at most (8 * 255)² ≈ 4.2e6.
FOCUS_MAX = 5_000_000.0
MAX_FRAMES = 1000  # calibrate --frames at most
MAX_SIDE = 16384
PROFILE_VERSION = 1
LAMP_DRIFT = 0.12  # a frame's glass this far (relative, any channel) from the profile's


class ProfileError(WbcError):
    """A camera profile is missing, corrupt or does not fit."""


@dataclass(frozen=True)
class CameraProfile:
    """One camera on one microscope, as `wbc-edge calibrate` measured it."""

    scale: float
    background: tuple[float, float, float]
    red_cell: tuple[float, float, float]
    focus: float
    frames: int
    frame_size: tuple[int, int]  # width, height of the frames measured
    source: str = ""
    created: str = ""

    @property
    def illumination(self) -> Illumination:
        return Illumination(self.background, self.red_cell)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": PROFILE_KIND,
            "version": PROFILE_VERSION,
            "scale": round(self.scale, 4),
            "background": [round(v, 1) for v in self.background],
            "red_cell": [round(v, 1) for v in self.red_cell],
            "focus": round(self.focus, 1),
            "frames": self.frames,
            "frame_size": list(self.frame_size),
            "source": self.source,
            "created": self.created,
        }

    def lamp_drift(self, ill: Illumination | None) -> float | None:
        """Largest relative difference of a frame's glass colour from the profile's."""
        if ill is None or ill.background is None:
            return None
        seen, ref = np.asarray(ill.background), np.asarray(self.background)
        return float(np.max(np.abs(seen / ref - 1.0)))


def save_profile(profile: CameraProfile, path: Path) -> None:
    """Write a profile as JSON, atomically (the folder is created)."""
    atomic_write(path, json.dumps(profile.to_dict(), indent=2) + "\n")


def is_profile_file(path: Path) -> bool:
    """True when `path` holds a camera profile (of any version): one calibrate may replace."""
    try:
        data = read_json(path, PROFILE_BYTES)
    except WbcError:
        return False
    return isinstance(data, dict) and data.get("kind") == PROFILE_KIND


def load_profile(path: Path | str) -> CameraProfile:
    """Read and check a profile; a ProfileError names the file and lists every problem."""
    path = Path(path)
    if not path.exists():
        raise ProfileError("no such camera profile", path)
    try:
        data = read_json(path, PROFILE_BYTES)
    except WbcError as exc:
        raise ProfileError(f"not a camera profile ({exc.message})", path) from None
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise ProfileError("not a camera profile (made by `wbc-edge calibrate`)", path)
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(f"profile version {data.get('version')!r} is not supported", path)
    fields = {k: v for k, v in data.items() if k not in ("kind", "version")}
    profile = decode_file(CameraProfile, fields, path, ProfileError)
    raise_problems(profile_problems(profile), path, ProfileError)
    return profile


def profile_problems(profile: CameraProfile) -> list[str]:
    """What no calibration measures, as `field: message`."""
    out = light_problems(profile.background, profile.red_cell)
    lo, hi = MEASURED_SCALE_RANGE
    if not lo <= profile.scale <= hi:
        out.append(f"scale: {profile.scale:g} is outside {MEASURED_SCALE_RANGE}")
    if profile.focus <= 0 or profile.frames < 1 or min(profile.frame_size) < 1:
        out.append("focus, frames and frame_size must be positive")
    if profile.focus > FOCUS_MAX:
        out.append(f"focus: {profile.focus:g} is over {FOCUS_MAX:g}, more than any frame can "
                   "measure")  # fmt: skip
    if profile.frames > MAX_FRAMES:
        out.append(f"frames: {profile.frames} is not from 1 to {MAX_FRAMES}")
    w, h = profile.frame_size
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        out.append(f"frame_size: {w}x{h} is larger than any camera frame read")
    return out


def check_frame_size(profile: CameraProfile, size: tuple[int, int], path: Path | str) -> None:
    """A profile fits frames of the size it was measured on, and crops of them (a crop keeps
    the camera's scale); a larger frame is another camera or resolution."""
    w, h = profile.frame_size
    if size[0] > w or size[1] > h:
        raise ProfileError(
            f"profile was measured on {w}x{h} frames, these are {size[0]}x{size[1]}: "
            "run `wbc-edge calibrate` on this camera at this size",
            path,
        )
