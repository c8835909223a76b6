"""Field mode: every white cell of a generated field found once, cropped like training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic import render_field

from wbc_edge.core.field import (
    TRAINING_IMAGE,
    cell_box,
    cell_input,
    cell_inputs,
    find_cells,
    training_window,
)
from wbc_edge.core.preprocess import preprocess
from wbc_edge.core.preprocess_spec import CropSpec, PreprocessSpec

pytestmark = pytest.mark.edge

SPEC = PreprocessSpec(height=32, width=32)


def inside(point, box) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


@pytest.mark.parametrize("seed", range(6))
def test_each_white_cell_found_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = seed % 3
    rgb, truth, _ = render_field(rng, n_cells=n)  # 640x480, cells ~200 px: scale 2
    cells = find_cells(rgb, SPEC, scale=2.0)
    assert len(cells) == n
    for t in truth:  # every cell holds exactly one detected nucleus centre
        assert sum(inside((c.nucleus.cx, c.nucleus.cy), t) for c in cells) == 1
    for c in cells:
        x0, y0, x1, y1 = c.box
        nx0, ny0, nx1, ny1 = c.nucleus.box
        assert 0 <= x0 < nx0 and 0 <= y0 < ny0 and nx1 < x1 <= 640 and ny1 < y1 <= 480


def test_cell_box_grows_the_nucleus_box_and_stays_in_the_frame() -> None:
    assert cell_box((100, 100, 200, 150), 2.0, (640, 480)) == (89, 91, 211, 159)
    assert cell_box((0, 0, 50, 50), 2.0, (58, 55)) == (0, 0, 58, 55)


def test_cell_inputs_are_the_training_crops() -> None:
    rng = np.random.default_rng(1)
    rgb, _, _ = render_field(rng, n_cells=2)
    cells = find_cells(rgb, SPEC, 2.0)
    batch = cell_inputs(rgb, cells, SPEC, 2.0)
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.float32
    for x, c in zip(batch, cells, strict=True):
        np.testing.assert_array_equal(x, preprocess(rgb, SPEC, 2.0, c.nucleus))
    assert cell_inputs(rgb, [], SPEC).shape == (0, 32, 32, 3)


def test_models_trained_on_whole_images_get_a_training_sized_window() -> None:
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :, 0] = np.arange(640) // 3  # a horizontal ramp shows where the window sits
    window = training_window(rgb, 320, 240, 1.5)
    assert window.shape == (round(TRAINING_IMAGE[1] * 1.5), round(TRAINING_IMAGE[0] * 1.5), 3)
    assert window[0, window.shape[1] // 2, 0] == 320 // 3
    edge = training_window(rgb, 10, 10, 1.0)  # padded with edge pixels, cell still centred
    assert edge.shape == (240, 320, 3) and edge[120, 160 - 10, 0] == 0
    spec = dataclasses.replace(SPEC, crop=CropSpec("none", 150))
    rng = np.random.default_rng(2)
    field, _, _ = render_field(rng, n_cells=1)
    (cell,) = find_cells(field, spec, 2.0)
    x = cell_input(field, cell.nucleus, spec, 2.0)
    expected = preprocess(training_window(field, cell.nucleus.cx, cell.nucleus.cy, 2.0), spec)
    np.testing.assert_array_equal(x, expected)
