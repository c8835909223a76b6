"""Scale from the red cells: camera px per training px, the same whatever the magnification."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import RBC_SCALE, render_field

from wbc_edge.edge_app.scale import (
    CALIBRATION_FRAMES,
    RECHECK_EVERY,
    TRAINING_RBC_DIAMETER,
    RunScale,
    estimate_scale,
    red_cell_diameter,
)

pytestmark = pytest.mark.edge


@pytest.fixture(scope="module")
def fields() -> list[np.ndarray]:
    return [render_field(np.random.default_rng(s), n_cells=1)[0] for s in range(3)]


def resized(rgb: np.ndarray, k: float) -> np.ndarray:
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, None, fx=k, fy=k, interpolation=interp)


@pytest.mark.parametrize("k", [0.7, 1.5, 2.0])
def test_the_estimate_follows_the_magnification(fields: list[np.ndarray], k: float) -> None:
    for rgb in fields:
        base = estimate_scale(rgb)
        other = estimate_scale(resized(rgb, k))
        assert base is not None and other is not None
        assert other.scale / base.scale == pytest.approx(k, rel=0.1)


def test_the_diameter_is_the_red_cells_size(fields: list[np.ndarray]) -> None:
    drawn = RBC_SCALE * 200.0  # render_field's red cells (cell_diameter 200)
    d = red_cell_diameter(fields[0])
    assert d is not None and 0.6 * drawn < d < 1.1 * drawn
    assert estimate_scale(fields[0]).scale == pytest.approx(d / TRAINING_RBC_DIAMETER)


def test_no_red_cells_no_estimate() -> None:
    glass = np.full((240, 320, 3), 210, np.uint8)
    assert estimate_scale(glass) is None
    assert estimate_scale(np.zeros((240, 320, 3), np.uint8)) is None


def test_a_run_fixes_its_scale_from_the_first_frames(fields: list[np.ndarray]) -> None:
    run = RunScale()
    assert run.value is None and "not measured" in run.describe()
    seen = [run.observe(fields[i % 3]) for i in range(CALIBRATION_FRAMES)]
    assert all(v is not None for v in seen) and run.fixed is not None
    fixed = run.fixed
    assert "measured from the red cells of" in run.describe()
    for _ in range(RECHECK_EVERY * 3):  # then a zoom: reported, never followed
        assert run.observe(resized(fields[0], 1.6)) == fixed
    assert run.drift is not None and run.drift > 1.3 * fixed
    assert "magnification or camera changed" in run.describe()


def test_a_given_scale_is_kept_and_still_checked(fields: list[np.ndarray]) -> None:
    run = RunScale(2.0, "given")
    assert run.observe(fields[0]) == 2.0 and "(given)" in run.describe()
    for _ in range(RECHECK_EVERY * 3):
        run.observe(fields[0])
    assert run.value == 2.0  # the measured scale differs from 2, but a given one is kept
