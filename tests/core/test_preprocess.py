import numpy as np
import pytest
from synthetic import CLASSES, render_cell, render_field

from wbc_edge.core.errors import NoCellFound
from wbc_edge.core.nucleus import find_nuclei, locate_cell
from wbc_edge.core.preprocess import (
    QuantParams,
    crop_window,
    normalise,
    prepare,
    preprocess,
    quantize,
)
from wbc_edge.core.preprocess_spec import CropSpec, NormSpec, NucleusParams, PreprocessSpec

pytestmark = pytest.mark.edge

VIOLET = (120, 60, 200)
PINK = (215, 160, 170)
PALE = (225, 225, 215)


def blank(h=120, w=160) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = PALE
    return img


def disc(img, cx, cy, r, colour):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = colour
    return img


def test_spec_round_trips_through_dict():
    spec = PreprocessSpec(
        height=32,
        width=40,
        color_order="BGR",
        crop=CropSpec("center", 90),
        norm=NormSpec("mean_std", mean=(0.1, 0.2, 0.3), std=(1, 2, 3)),
    )
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


def test_locator_picks_the_nucleus_not_red_cells_or_platelets():
    img = blank()
    disc(img, 30, 30, 18, PINK)
    disc(img, 140, 100, 2, VIOLET)  # platelet: too small
    disc(img, 100, 70, 15, VIOLET)
    nuc = locate_cell(img, NucleusParams())
    assert nuc is not None and abs(nuc.cx - 100) < 1 and abs(nuc.cy - 70) < 1
    assert nuc.box == (85, 55, 116, 86)


def test_lobes_of_one_nucleus_merge_but_distant_cells_do_not():
    img = blank(200, 300)
    for cx in (40, 56, 72):  # three lobes 16 px apart, gaps of ~6 px
        disc(img, cx, 60, 10, VIOLET)
    disc(img, 230, 150, 16, VIOLET)
    nuclei = find_nuclei(img, NucleusParams())
    assert len(nuclei) == 2
    lobed = min(nuclei, key=lambda n: n.cx)
    assert lobed.box[0] <= 30 and lobed.box[2] >= 82


def test_nearest_the_centre_wins_over_slightly_larger_at_the_edge():
    img = blank()
    disc(img, 80, 60, 14, VIOLET)
    disc(img, 150, 10, 15, VIOLET)
    nuc = locate_cell(img, NucleusParams())
    assert abs(nuc.cx - 80) < 1


def test_scale_makes_thresholds_follow_the_magnification():
    img = blank(240, 320)
    disc(img, 160, 120, 12, VIOLET)  # area ~450 px: a nucleus at scale 1 ...
    assert locate_cell(img, NucleusParams(min_area=400), scale=1.0) is not None
    assert locate_cell(img, NucleusParams(min_area=400), scale=2.0) is None  # ... too small at 2x


def test_no_cell_is_reported_not_guessed():
    img = disc(blank(), 60, 60, 20, PINK)
    with pytest.raises(NoCellFound, match="no stained white-cell nucleus"):
        prepare(img, PreprocessSpec())
    out = prepare(img, PreprocessSpec(height=16, width=16, crop=CropSpec("none")))
    assert out.shape == (16, 16, 3)


def test_crop_is_centred_on_the_cell_and_clamped_at_borders():
    img = disc(blank(), 20, 100, 12, VIOLET)
    spec = PreprocessSpec(height=60, width=60, crop=CropSpec("nucleus", 60))
    out = prepare(img, spec)
    assert out.shape == (60, 60, 3)
    crop, box = crop_window(img, 20, 100, 60)
    assert box == (0, 60, 60, 120)  # pushed inside the 160x120 image
    np.testing.assert_array_equal(out, crop)


def test_window_larger_than_image_is_padded():
    img = disc(blank(40, 50), 25, 20, 6, VIOLET)
    crop, box = crop_window(img, 25, 20, 80)
    assert crop.shape == (80, 80, 3)
    assert box[2] - box[0] == 80


def test_bgr_order_and_normalisations():
    img = blank()
    img[:, :, 0] = 200  # R
    img[:, :, 2] = 10  # B
    bgr = PreprocessSpec(height=8, width=8, color_order="BGR", crop=CropSpec("none"))
    out = prepare(img, bgr)
    assert out[0, 0, 0] == 10 and out[0, 0, 2] == 200
    x = normalise(out[None], bgr)
    assert x.dtype == np.float32 and np.isclose(x[0, 0, 0, 2], 200 / 255)
    ms = PreprocessSpec(
        height=8,
        width=8,
        color_order="BGR",
        crop=CropSpec("none"),
        norm=NormSpec("mean_std", mean=(0.5, 0.5, 0.1), std=(0.5, 0.5, 0.2)),
    )
    y = normalise(out, ms)
    # mean/std are given in RGB order; the B channel (first, in BGR) uses mean 0.1, std 0.2
    assert np.isclose(y[0, 0, 0], (10 / 255 - 0.1) / 0.2)
    assert np.isclose(y[0, 0, 2], (200 / 255 - 0.5) / 0.5)


def test_quantize_rounds_and_saturates():
    x = np.array([-2.0, 0.0, 0.6, 1.0, 3.0], np.float32)
    q = quantize(x, QuantParams(scale=1 / 255, zero_point=-128, dtype="int8"))
    assert q.dtype == np.int8 and q.tolist() == [-128, -128, 25, 127, 127]
    u = quantize(x, QuantParams(scale=1 / 255, zero_point=0, dtype="uint8"))
    assert u.tolist() == [0, 0, 153, 255, 255]


def test_generated_cells_are_found_inside_their_true_box():
    rng = np.random.default_rng(5)
    for label in CLASSES:
        img, (x0, y0, x1, y1) = render_cell(label, rng)
        nuc = locate_cell(img, NucleusParams())
        assert nuc is not None, label
        assert x0 <= nuc.cx <= x1 and y0 <= nuc.cy <= y1, label


def test_field_finder_uses_the_same_mask_for_several_cells():
    rng = np.random.default_rng(7)
    frame, boxes, _ = render_field(rng, n_cells=3)
    nuclei = find_nuclei(frame, NucleusParams(), scale=2.0)
    assert len(nuclei) == 3
    for nuc in nuclei:
        assert any(b[0] <= nuc.cx <= b[2] and b[1] <= nuc.cy <= b[3] for b in boxes)
    empty, _, _ = render_field(rng, n_cells=0)
    assert find_nuclei(empty, NucleusParams(), scale=2.0) == []


def test_preprocess_chain_equals_its_steps():
    rng = np.random.default_rng(2)
    img, _ = render_cell("MONOCYTE", rng, size=(160, 120))
    spec = PreprocessSpec(height=32, width=32, crop=CropSpec("nucleus", 75))
    np.testing.assert_array_equal(preprocess(img, spec), normalise(prepare(img, spec), spec))
