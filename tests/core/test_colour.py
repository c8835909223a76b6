"""Colour normalisation: a camera's white balance and exposure undone from the image itself."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import render_cell, render_field

from wbc_edge.core.colour import (
    NO_BACKGROUND,
    NO_RED_CELLS,
    correct_colour,
    estimate_illumination,
    measure_illumination,
    reference_colours,
)
from wbc_edge.core.preprocess import prepare
from wbc_edge.core.preprocess_spec import ColourSpec, PreprocessSpec

pytestmark = pytest.mark.edge


def gains(rgb: np.ndarray, r: float, g: float, b: float) -> np.ndarray:
    x = rgb.astype(np.float32) * np.array([r, g, b], np.float32)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def gamma(rgb: np.ndarray, value: float) -> np.ndarray:
    return np.clip(255.0 * (rgb / 255.0) ** value + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    rgb, _, _ = render_field(np.random.default_rng(3), n_cells=1)
    return rgb


@pytest.fixture(scope="module")
def spec(field: np.ndarray) -> ColourSpec:
    background, red = reference_colours([field])
    return ColourSpec("reference", tuple(background), tuple(red))


SHIFTS = {
    "warm lamp": lambda x: gains(x, 1.12, 1.0, 0.85),
    "cool LED": lambda x: gains(x, 0.88, 1.0, 1.12),
    "green cast": lambda x: gains(x, 1.0, 1.08, 1.0),
    "darker gamma": lambda x: gamma(x, 1.5),
    "brighter gamma": lambda x: gamma(x, 0.7),
    "under-exposed": lambda x: gains(x, 0.7, 0.7, 0.7),
}


@pytest.mark.parametrize("name", SHIFTS)
def test_a_camera_shift_is_undone(field: np.ndarray, spec: ColourSpec, name: str) -> None:
    shifted = SHIFTS[name](field)
    before = np.abs(shifted.astype(int) - field.astype(int)).mean()
    ref, _ = correct_colour(field, spec)
    out, ill = correct_colour(shifted, spec)
    after = np.abs(out.astype(int) - ref.astype(int)).mean()
    assert ill is not None and not ill.flags
    assert before > 4.0 and after < 3.0, (before, after)


def test_the_references_map_onto_the_spec(field: np.ndarray, spec: ColourSpec) -> None:
    out, _ = correct_colour(gains(field, 0.9, 1.05, 1.1), spec)
    seen = measure_illumination(out, spec)
    np.testing.assert_allclose(seen.background, spec.background, atol=3)
    np.testing.assert_allclose(seen.red_cell, spec.red_cell, atol=3)


def test_a_single_cell_crop_with_black_rotation_corners(spec: ColourSpec) -> None:
    crop, _ = render_cell("LYMPHOCYTE", np.random.default_rng(5))
    crop = crop.copy()
    crop[:40, :40] = 0  # a rotated copy's black corner
    cool = gains(crop, 0.9, 1.0, 1.1)
    ill = measure_illumination(cool, spec)
    assert not ill.flags
    a, _ = correct_colour(crop, spec)
    b, _ = correct_colour(cool, spec)
    assert np.abs(a.astype(int) - b.astype(int))[40:, 40:].mean() < 2.5


def test_no_glass_is_a_flag_and_the_red_cells_still_give_a_gain(spec: ColourSpec) -> None:
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:] = (190, 150, 160)  # all red cells, no glass
    rgb[::2, ::3] = (180, 140, 150)
    ill = estimate_illumination(rgb)
    assert NO_BACKGROUND in ill.flags and NO_RED_CELLS not in ill.flags
    out, _ = correct_colour(rgb, spec)
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_empty_glass_has_no_red_cells(spec: ColourSpec) -> None:
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(210, 2, (120, 160, 3)), 0, 255).astype(np.uint8)
    ill = estimate_illumination(rgb)
    assert NO_RED_CELLS in ill.flags
    out, _ = correct_colour(rgb, spec)
    assert out.shape == rgb.shape


def test_glass_blown_out_by_a_gain_is_not_measured(field: np.ndarray) -> None:
    ill = estimate_illumination(gains(field, 1.3, 1.3, 1.3))  # the glass clips at 255
    assert NO_BACKGROUND in ill.flags and ill.red_cell is not None


@pytest.mark.parametrize("value", [0, 255])
def test_a_black_or_blown_out_frame_has_neither_reference(spec: ColourSpec, value: int) -> None:
    rgb = np.full((60, 80, 3), value, np.uint8)
    ill = estimate_illumination(rgb)
    assert set(ill.flags) == {NO_BACKGROUND, NO_RED_CELLS}
    out, _ = correct_colour(rgb, spec)
    np.testing.assert_array_equal(out, rgb)  # nothing to correct from: left as it is


def test_a_profile_fills_in_the_missing_glass(spec: ColourSpec, field: np.ndarray) -> None:
    crowded = np.zeros((120, 160, 3), np.uint8)
    crowded[:] = (170, 140, 150)
    crowded[::2, ::3] = (160, 130, 140)
    fallback = measure_illumination(gains(field, 0.9, 1.0, 1.0), spec)
    alone, ill = correct_colour(crowded, spec)
    helped, _ = correct_colour(crowded, spec, fallback=fallback)
    assert NO_BACKGROUND in ill.flags  # what the frame showed is still reported
    assert not np.array_equal(alone, helped)


def test_prepare_applies_the_colour_step_first(field: np.ndarray, spec: ColourSpec) -> None:
    with_colour = PreprocessSpec(height=32, width=32, colour=spec)
    crop_a = prepare(field, with_colour, 2.0)
    crop_b = prepare(gains(field, 1.12, 1.0, 0.85), with_colour, 2.0)
    assert np.abs(crop_a.astype(int) - crop_b.astype(int)).mean() < 3.0
    plain = prepare(field, with_colour.after_colour(), 2.0)
    assert with_colour.after_colour().colour.method == "none" and plain.shape == crop_a.shape


def test_the_spec_round_trips_and_checks_its_references(spec: ColourSpec) -> None:
    full = PreprocessSpec(colour=spec)
    d = full.to_dict()
    assert d["colour"]["method"] == spec.method
    assert PreprocessSpec.from_dict(d) == full
    bad = dict(
        d,
        colour={"method": "reference", "background": [100, 100, 100], "red_cell": [200, 200, 200]},
    )
    with pytest.raises(ValueError, match="brighter in green"):
        PreprocessSpec.from_dict(bad)
    with pytest.raises(ValueError, match="3 values"):
        PreprocessSpec.from_dict(dict(d, colour={"method": "reference", "background": [1, 2]}))
