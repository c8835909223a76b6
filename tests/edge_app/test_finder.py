"""What a frame goes through before the model: the fast paths give what the slow ones gave."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import render_field

from wbc_edge.core.colour import (
    _hist_median,
    _masked_median,
    apply_lut,
    colour_table,
    correct_colour,
    histogram,
)
from wbc_edge.core.field import cell_inputs, find_cells
from wbc_edge.core.gallery import model_crop
from wbc_edge.core.preprocess_spec import ColourSpec, PreprocessSpec
from wbc_edge.core.resample import shrink, shrink_by
from wbc_edge.edge_app.finder import CellFinder
from wbc_edge.edge_app.morphology import measure_cell
from wbc_edge.edge_app.scale import RECHECK_EVERY, RunScale

pytestmark = pytest.mark.edge

REFERENCE = ColourSpec("reference", (207.0, 207.0, 203.0), (191.0, 170.0, 177.0))
SPEC = PreprocessSpec(height=32, width=32, colour=REFERENCE)


def warm(rgb: np.ndarray) -> np.ndarray:
    """A warm lamp: red up, blue down."""
    gains = np.array([1.12, 1.0, 0.85])
    return np.clip(rgb * gains, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(305, 229), (320, 240), (200, 150), (600, 450)])
def test_shrink_is_close_to_opencv_area(size: tuple[int, int]) -> None:
    rgb, _, _ = render_field(np.random.default_rng(0), n_cells=2)
    exact = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    fast = shrink(rgb, size)
    assert fast.shape == exact.shape and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - exact).mean() < 1.5  # grey levels, on a noisy field
    if 640 / size[0] < 2 or 640 % size[0] == 0:
        np.testing.assert_array_equal(fast, exact)  # below 2x, and whole factors: the same


def test_shrink_by_keeps_its_own_size() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    assert shrink_by(rgb, 1.0) is rgb
    assert shrink_by(rgb, 2.0).shape == (24, 32, 3)


def test_histogram_median_is_numpys() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 17, 1000, 1001):
        v = rng.integers(0, 256, n).astype(np.uint8)
        assert _hist_median(np.bincount(v, minlength=256), n) == np.median(v)
        assert _hist_median(histogram(v.reshape(1, -1)), n) == np.median(v)
    img = rng.integers(0, 256, (27, 37, 3)).astype(np.uint8)
    mask = rng.random((27, 37)) < 0.6
    planes = tuple(np.ascontiguousarray(img[:, :, c]) for c in range(3))
    assert _masked_median(planes, mask) == tuple(np.median(img[mask].astype(float), axis=0))


def test_a_table_applied_to_a_crop_gives_the_corrected_frames_pixels() -> None:
    rgb = warm(render_field(np.random.default_rng(1), n_cells=2)[0])
    lut, _ = colour_table(rgb, REFERENCE)
    assert lut is not None
    corrected, _ = correct_colour(rgb, REFERENCE)
    np.testing.assert_array_equal(apply_lut(rgb[50:200, 80:300], lut), corrected[50:200, 80:300])
    spec = SPEC.after_colour()
    cells = find_cells(corrected, spec, 2.0)
    assert cells
    np.testing.assert_array_equal(
        cell_inputs(rgb, cells, spec, 2.0, lut), cell_inputs(corrected, cells, spec, 2.0)
    )


def test_finder_finds_the_cells_the_corrected_frame_shows() -> None:
    rgb, truth, _ = render_field(np.random.default_rng(2), n_cells=2)
    finder = CellFinder(SPEC, "field", scale=2.0)
    found = finder.find(warm(rgb))
    assert len(found.boxes) == len(truth) == 2
    assert found.inputs().shape == (2, 32, 32, 3)
    assert [c.shape for c in found.crops([0, 1])] == [(32, 32, 3)] * 2
    assert set(found.timings) == {"colour", "scale", "quality", "find"}


def test_the_shared_window_gives_the_crops_and_morphology_of_separate_cuts() -> None:
    rgb = warm(render_field(np.random.default_rng(4), n_cells=2)[0])
    found = CellFinder(SPEC, "field", scale=2.0).find(rgb)
    assert found.nuclei
    spec = found.spec
    for i, nucleus in enumerate(found.nuclei):
        assert nucleus is not None
        crop = model_crop(rgb, spec, 2.0, nucleus, True, found.lut)
        np.testing.assert_array_equal(found.crops([i])[0], crop)
        alone = measure_cell(rgb, nucleus, spec.nucleus, 2.0, spec.crop.size, True, found.lut)
        assert found.measure(i, True) == alone


def test_run_scale_is_due_while_calibrating_then_every_recheck() -> None:
    fixed = RunScale(2.0)
    due = []
    for _ in range(2 * RECHECK_EVERY):
        due.append(fixed.due())
        fixed.observe(np.zeros((8, 8, 3), np.uint8) if due[-1] else None)
    assert due.count(True) == 2 and due[RECHECK_EVERY - 1]
    assert RunScale().due()
    with pytest.raises(ValueError):
        RunScale().observe(None)
