"""Physical ranges of the preprocessing numbers a bundle gives (training-image pixels).

The training images are 320x240 px, so a crop of 30000 px, a closing radius of a million or a
smallest nucleus larger than the image describe no microscope: they would only make a frame's
processing allocate gigabytes or find nothing. `range_problems(spec)` lists each value outside
its range, as `field: message`, for `PreprocessSpec.problems`.
"""

from __future__ import annotations

from typing import Any

IMAGE_AREA = 320 * 240  # one training image, px²
RANGES: dict[str, tuple[float, float]] = {
    "height": (8, 1024),  # the model's input (EfficientNet-Lite2 takes 260)
    "width": (8, 1024),
    "crop.size": (8, 640),  # the window around a nucleus, at most twice a training image's width
    "nucleus.stain_threshold": (-255, 255),
    "nucleus.field_stain_threshold": (-255, 255),
    "nucleus.max_green": (0, 255),
    "nucleus.min_area": (0, IMAGE_AREA),
    "nucleus.field_min_area": (0, IMAGE_AREA),
    "nucleus.close_radius": (0, 100),
    "nucleus.merge_radius": (0, 100),
    "nucleus.centre_weight": (0, 1000),
}


def range_problems(spec: Any) -> list[str]:
    """`field: V is outside LO..HI` for each number of `spec` outside its physical range."""
    out = []
    for name, (lo, hi) in RANGES.items():
        value: Any = spec
        for part in name.split("."):
            value = getattr(value, part)
        if value is not None and not lo <= value <= hi:
            out.append(f"{name}: {value:g} is outside {lo:g}..{hi:g} (training-image pixels)")
    return out
