"""Field mode: find every white cell in a whole field of view and cut the crop the model expects.

The detector is `core.nucleus.find_nuclei` (the same stain mask, closing and lobe merging as
cell mode), run with `scale` = camera pixels per training-image pixel. Each nucleus becomes one
cell: its box is the nucleus box grown by a margin (the cytoplasm around it), and its model input
is `preprocess(rgb, spec, scale, nucleus)`, the same crop cell mode would cut from a Kaggle image.

Scale: the Kaggle crops (320x240) were cut from 640x480 BCCD frames at about half resolution, so
for BCCD-like frames `scale` is about 2. For another camera, scale ~ red-cell diameter in camera
pixels / 52 (a red cell is about 52 px across in the training images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wbc_edge.core.nucleus import Nucleus, find_nuclei
from wbc_edge.core.preprocess import preprocess
from wbc_edge.core.preprocess_spec import PreprocessSpec

DEFAULT_FIELD_SCALE = 2.0  # camera px per training px for 640x480 BCCD-like frames
TRAINING_IMAGE = (320, 240)  # width, height of the Kaggle crops the classifiers learn from
RBC_DIAMETER = 52.0  # a red cell across, in training-image pixels (BCCD median 104 px / 2)
# The cell box is the nucleus box grown on each side by BOX_GROW of its size plus BOX_MARGIN
# training pixels (measured on BCCD; see benchmarks/detect_bccd.py).
BOX_GROW = 0.05
BOX_MARGIN = 3.0

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Cell:
    """One white cell in a frame: its box (x0, y0, x1, y1; x1/y1 exclusive) and nucleus."""

    box: Box
    nucleus: Nucleus


def find_cells(
    rgb: np.ndarray,
    spec: PreprocessSpec,
    scale: float = DEFAULT_FIELD_SCALE,
    small: np.ndarray | None = None,
) -> list[Cell]:
    """Every white cell in an RGB frame, largest nucleus first (lobes already merged).

    `small`: the frame already at the training scale (see `core.nucleus.find_nuclei`).
    """
    h, w = rgb.shape[:2]
    nuclei = find_nuclei(rgb, spec.nucleus.for_field(), scale, small)
    return [Cell(cell_box(n.box, scale, (w, h)), n) for n in nuclei]


def cell_box(nucleus_box: Box, scale: float, size: tuple[int, int]) -> Box:
    """The whole cell around a nucleus box, clipped to the frame of `size` (width, height)."""
    x0, y0, x1, y1 = nucleus_box
    mx = BOX_GROW * (x1 - x0) + BOX_MARGIN * scale
    my = BOX_GROW * (y1 - y0) + BOX_MARGIN * scale
    w, h = size
    return (
        max(0, math.floor(x0 - mx)),
        max(0, math.floor(y0 - my)),
        min(w, math.ceil(x1 + mx)),
        min(h, math.ceil(y1 + my)),
    )


def cell_inputs(
    rgb: np.ndarray,
    cells: list[Cell],
    spec: PreprocessSpec,
    scale: float = DEFAULT_FIELD_SCALE,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """The model inputs (N, H, W, 3) float32 for the cells of one frame (`lut`: see
    `core.preprocess.prepare`)."""
    if not cells:
        return np.zeros((0, spec.height, spec.width, 3), np.float32)
    return np.stack([cell_input(rgb, c.nucleus, spec, scale, lut) for c in cells])


def cell_input(
    rgb: np.ndarray,
    nucleus: Nucleus,
    spec: PreprocessSpec,
    scale: float = DEFAULT_FIELD_SCALE,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """One cell's model input, cropped as the classifier was trained.

    A `nucleus` crop is cut directly around the nucleus. A model trained on whole training
    images (`crop.method` `none` or `center`) gets a training-image-sized window centred on
    the nucleus first, so it sees the same context it was trained with.
    """
    if spec.crop.method == "nucleus":
        return preprocess(rgb, spec, scale=scale, nucleus=nucleus, lut=lut)
    window = training_window(rgb, nucleus.cx, nucleus.cy, scale)
    return preprocess(window, spec, scale=scale, lut=lut)


def training_window(rgb: np.ndarray, cx: float, cy: float, scale: float) -> np.ndarray:
    """A TRAINING_IMAGE-shaped window (in camera pixels) centred on (cx, cy), edge-padded."""
    h, w = rgb.shape[:2]
    cw, ch = (max(1, round(n * scale)) for n in TRAINING_IMAGE)
    x0, y0 = round(cx - cw / 2), round(cy - ch / 2)
    pad_y = (max(0, -y0), max(0, y0 + ch - h))
    pad_x = (max(0, -x0), max(0, x0 + cw - w))
    window = rgb[max(0, y0) : y0 + ch, max(0, x0) : x0 + cw]
    if any(pad_y) or any(pad_x):
        window = np.pad(window, (pad_y, pad_x, (0, 0)), mode="edge")
    return np.ascontiguousarray(window)
