"""The nucleus detector: lobes merged by distance, specks dropped, the same nuclei at any scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wbc_edge.core.nucleus import find_nuclei, locate_cell, stain_mask
from wbc_edge.core.preprocess_spec import NucleusParams

pytestmark = pytest.mark.edge

PARAMS = NucleusParams()  # merge_radius 10: lobes up to 21 training px apart are one nucleus
PINK, VIOLET = (235, 190, 205), (90, 60, 160)


def slide(size: tuple[int, int] = (320, 240)) -> np.ndarray:
    return np.full((size[1], size[0], 3), PINK, np.uint8)


def disc(rgb: np.ndarray, centre: tuple[int, int], radius: int) -> None:
    cv2.circle(rgb, centre, radius, VIOLET, -1)


@pytest.mark.parametrize(("gap", "expected"), [(8, 1), (19, 1), (24, 2), (40, 2)])
def test_lobes_closer_than_twice_the_merge_radius_are_one_nucleus(gap: int, expected: int) -> None:
    rgb = slide()
    disc(rgb, (100, 120), 15)
    disc(rgb, (100 + 30 + gap + 1, 120), 15)  # edge-to-edge gap of about `gap` px
    nuclei = find_nuclei(rgb, PARAMS)
    assert len(nuclei) == expected
    if expected == 1:
        (nuc,) = nuclei
        assert nuc.box[0] == 85 and nuc.box[2] == 100 + 30 + gap + 1 + 16
        assert abs(nuc.cx - (100 + (30 + gap + 1) / 2)) < 0.5 and abs(nuc.cy - 120) < 0.5


def test_specks_are_dropped_but_join_a_nucleus_next_to_them() -> None:
    rgb = slide()
    disc(rgb, (160, 120), 18)
    disc(rgb, (160 + 18 + 12, 120), 3)  # a platelet 9 px from the nucleus: merged
    for x in range(20, 300, 40):
        disc(rgb, (x, 20), 3)  # a row of specks, each far below min_area
    (nuc,) = find_nuclei(rgb, PARAMS)
    assert nuc.box[2] == 160 + 18 + 12 + 4
    assert nuc.area == int((rgb[:, :, 2].astype(int) - rgb[:, :, 1] > 45)[60:].sum())


def test_a_frame_at_twice_the_scale_gives_the_same_nuclei_twice_as_large() -> None:
    rgb = slide()
    disc(rgb, (90, 110), 16)
    disc(rgb, (118, 100), 9)  # a second lobe
    disc(rgb, (240, 160), 20)
    one = find_nuclei(rgb, PARAMS, 1.0)
    big = cv2.resize(rgb, (640, 480), interpolation=cv2.INTER_LINEAR)
    two = find_nuclei(big, PARAMS, 2.0)
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        assert abs(2 * a.cx + 0.5 - b.cx) < 1.0 and abs(2 * a.cy + 0.5 - b.cy) < 1.0
        assert max(abs(2 * u - v) for u, v in zip(a.box, b.box, strict=True)) <= 2
        assert abs(4 * a.area - b.area) <= 0.05 * b.area


def test_locate_cell_prefers_the_large_central_nucleus() -> None:
    rgb = slide()
    disc(rgb, (160, 120), 18)
    disc(rgb, (30, 30), 12)
    nuc = locate_cell(rgb, PARAMS)
    assert nuc is not None and abs(nuc.cx - 160) < 0.5 and abs(nuc.cy - 120) < 0.5
    assert locate_cell(slide(), PARAMS) is None


@pytest.mark.parametrize(
    ("threshold", "max_green"), [(45.0, 200.0), (45.5, 200.5), (0.0, 255.0), (-20.0, 90.0)]
)
def test_stain_mask_is_b_minus_g_above_threshold_and_g_not_pale(threshold, max_green) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    g, b = rgb[:, :, 1].astype(int), rgb[:, :, 2].astype(int)
    expected = ((b - g > threshold) & (g <= max_green)).astype(np.uint8)
    params = NucleusParams(stain_threshold=threshold, max_green=max_green)
    np.testing.assert_array_equal(stain_mask(rgb, params), expected)
