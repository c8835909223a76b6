"""Frame quality: out of focus, exposure and missing references are flagged, never guessed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import render_field

from wbc_edge.core.colour import NO_BACKGROUND, NO_RED_CELLS, correct_colour, reference_colours
from wbc_edge.core.preprocess_spec import ColourSpec
from wbc_edge.edge_app.quality import (
    OUT_OF_FOCUS,
    OVER_EXPOSED,
    UNDER_EXPOSED,
    assess_frame,
    focus_measure,
)

pytestmark = pytest.mark.edge


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return render_field(np.random.default_rng(2), n_cells=1)[0]


@pytest.fixture(scope="module")
def spec(field: np.ndarray) -> ColourSpec:
    bg, red = reference_colours([field])
    return ColourSpec("reference", tuple(bg), tuple(red))


def assess(rgb: np.ndarray, spec: ColourSpec, baseline: float | None = None):
    corrected, ill = correct_colour(rgb, spec)
    return assess_frame(rgb, corrected, ill, 2.0, baseline)


def test_a_good_frame_has_no_flag(field: np.ndarray, spec: ColourSpec) -> None:
    q = assess(field, spec)
    assert q.flags == [] and not q.blocking and q.focus > 0


def test_out_of_focus_blocks_the_count(field: np.ndarray, spec: ColourSpec) -> None:
    q = assess(cv2.GaussianBlur(field, (0, 0), 8), spec)
    assert OUT_OF_FOCUS in q.flags and q.blocking


def test_focus_against_a_camera_profile(field: np.ndarray, spec: ColourSpec) -> None:
    sharp = focus_measure(correct_colour(field, spec)[0], 2.0)
    slightly = cv2.GaussianBlur(field, (0, 0), 2.5)
    assert OUT_OF_FOCUS not in assess(slightly, spec).flags  # fine for the general limit
    assert OUT_OF_FOCUS in assess(slightly, spec, baseline=sharp * 4).flags


def test_focus_is_compared_at_training_scale(field: np.ndarray) -> None:
    big = cv2.resize(field, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    a, b = focus_measure(field, 2.0), focus_measure(big, 4.0)
    assert b == pytest.approx(a, rel=0.35)


def test_exposure(field: np.ndarray, spec: ColourSpec) -> None:
    dark = (field * 0.15).astype(np.uint8)
    q = assess(dark, spec)
    assert UNDER_EXPOSED in q.flags and q.blocking
    bright = field.copy()
    bright[field[:, :, 1] > 200] = 255  # the glass blown out
    q = assess(bright, spec)
    assert OVER_EXPOSED in q.flags and not q.blocking  # the glass clips; the cells still show
    blown = np.clip(field.astype(np.float32) * 3.0, 0, 255).astype(np.uint8)
    assert assess(blown, spec).blocking


def test_no_red_cells_blocks_and_no_glass_only_warns(spec: ColourSpec) -> None:
    glass = np.full((240, 320, 3), 212, np.uint8)
    glass[::7, ::5] = 200
    q = assess(glass, spec)
    assert NO_RED_CELLS in q.flags and q.blocking
    crowded = np.zeros((240, 320, 3), np.uint8)
    crowded[:] = (200, 150, 160)
    crowded[::3, ::2] = (185, 135, 150)
    q = assess(crowded, spec)
    assert NO_BACKGROUND in q.flags and NO_RED_CELLS not in q.flags
