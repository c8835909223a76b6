"""The crop each cell's model input was made from, as uint8 RGB: what the model saw.

`core.preprocess.prepare` cuts and resizes the crop (in the model's colour order); the model
input is `normalise` of it. Keeping the crop lets a report show every counted cell exactly as it
was classified, and lets a technician's corrections become training images.
"""

from __future__ import annotations

import numpy as np

from wbc_edge.core.field import training_window
from wbc_edge.core.nucleus import Nucleus
from wbc_edge.core.preprocess import prepare
from wbc_edge.core.preprocess_spec import PreprocessSpec


def model_crop(
    rgb: np.ndarray,
    spec: PreprocessSpec,
    scale: float,
    nucleus: Nucleus | None = None,
    field: bool = False,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """The uint8 crop in the spec's colour order, as `field.cell_input` / cell mode cut it.

    `field=True` with a model trained on whole images (`crop.method` other than `nucleus`) gives
    the training-image window around the nucleus first, as field mode does.
    """
    if field and nucleus is not None and spec.crop.method != "nucleus":
        return prepare(training_window(rgb, nucleus.cx, nucleus.cy, scale), spec, scale, lut=lut)
    return prepare(rgb, spec, scale, nucleus, lut)


def to_rgb(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A crop in the model's colour order back to RGB for display."""
    return np.ascontiguousarray(crop[:, :, ::-1]) if spec.color_order == "BGR" else crop
