import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.preprocess_spec import CropSpec, NormSpec, PreprocessSpec
from wbc_edge.train import dataset
from wbc_edge.train.augment import Augment, augment_batch
from wbc_edge.train.dataset import CellBatches, balanced_class_weights, load_cached

SPEC = PreprocessSpec(height=16, width=16, norm=NormSpec(kind="scale", scale=1 / 127.5, offset=-1))


def images(n=6, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_augment_parse_and_describe():
    assert Augment.parse("flips,rot90,shift=0.1") == Augment(True, True, True, 0.1)
    assert Augment.parse("hflip,shift") == Augment(hflip=True, shift=0.1)
    assert not Augment.parse("none").active and not Augment.parse("").active
    assert Augment.parse("hflip,shift=0.13").describe() == "hflip,shift=0.13"
    with pytest.raises(WbcError, match="unknown augmentation 'sharpen'"):
        Augment.parse("sharpen")
    full = Augment.parse("flips,rot90,scale=0.1,shift=0.05,hue=8,sat=0.2,bright=0.15,blur=0.3")
    assert Augment.parse(full.describe()) == full
    assert Augment.parse("blur").blur == 0.3
    with pytest.raises(WbcError, match="augment hue must be in"):
        Augment.parse("hue=120")
    with pytest.raises(WbcError, match="not a number"):
        Augment.parse("sat=lots")


def cell_like(n=8, size=32, seed=0):
    """Purple disc on a pink background: colour jitter has hue and saturation to act on."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (230, 190, 200)
    img[disc] = (110, 60, 160)
    return np.repeat(img[None], n, axis=0)


def test_colour_jitter_changes_colour_but_not_layout():
    x = cell_like()
    out = augment_batch(x, Augment(hue=20, sat=0.3, bright=0.2), np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert not np.array_equal(out, x)
    # the disc stays where it was: darkest pixels of every image are inside it
    total = out.astype(int).sum(axis=3)
    dark = total < total.mean(axis=(1, 2), keepdims=True)
    assert np.array_equal(dark, np.broadcast_to(dark[0], dark.shape))


def test_zoom_keeps_the_cell_centred_and_blur_smooths():
    x = cell_like(n=16)
    zoomed = augment_batch(x, Augment(scale=0.3), np.random.default_rng(1))
    dark = zoomed.astype(int).sum(axis=3) < 500
    areas = dark.sum(axis=(1, 2))
    assert areas.min() < dark[0].size and areas.std() > 0  # sizes vary with the zoom
    centre = np.array([np.argwhere(d).mean(axis=0) for d in dark])
    assert np.abs(centre - 15.5).max() < 1.0  # zoom is about the centre
    blurred = augment_batch(x, Augment(blur=1.0), np.random.default_rng(2))
    edges = lambda a: np.abs(np.diff(a.astype(int), axis=2)).sum()  # noqa: E731
    assert edges(blurred) < edges(x)


def test_flips_and_rotations_only_move_pixels():
    x = images()
    out = augment_batch(x, Augment(True, True, True), np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.uint8
    for a, b in zip(x, out, strict=True):  # each output is one of the 8 dihedral copies
        variants = [np.rot90(v, k) for v in (a, a[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(b, v) for v in variants)
    assert not np.array_equal(out, x)


def test_shift_moves_content_within_the_limit():
    x = np.zeros((40, 20, 20, 3), np.uint8)
    x[:, 10, 10] = 255
    out = augment_batch(x, Augment(shift=0.1), np.random.default_rng(0))
    ys, xs = np.nonzero(out[..., 0] == 255)[1:]
    assert np.abs(ys - 10).max() <= 2 and np.abs(xs - 10).max() <= 2
    assert (ys != 10).any()


def test_batches_normalise_with_the_one_preprocessing():
    x, y = images(10), np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    seq = CellBatches(x, y, 4, SPEC, batch_size=4)
    assert len(seq) == 3
    bx, by = seq[0]
    np.testing.assert_array_equal(bx, normalise(x[:4], SPEC))
    np.testing.assert_array_equal(by.argmax(1), y[:4])
    assert len(CellBatches(x, y, 4, SPEC, batch_size=4, max_batches=2)) == 2


def test_shuffled_augmented_batches_repeat_for_a_seed_and_change_per_epoch():
    x, y = images(8), np.arange(8) % 4
    kw = dict(batch_size=4, augment=Augment(True, True, True, 0.1), shuffle=True, seed=3)
    a, b = CellBatches(x, y, 4, SPEC, **kw), CellBatches(x, y, 4, SPEC, **kw)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(first, a[0][0])
    b.set_epoch(1)
    np.testing.assert_array_equal(a[1][0], b[1][0])


def test_balanced_class_weights_and_sample_weights():
    labels = np.array([0, 0, 0, 1])
    w = balanced_class_weights(labels, 3)
    np.testing.assert_allclose(w, [4 / 6, 2.0, 0.0])
    seq = CellBatches(images(4), labels, 3, SPEC, batch_size=4, class_weights=w)
    np.testing.assert_allclose(seq[0][2], [4 / 6, 4 / 6, 4 / 6, 2.0])


def test_mixup_blends_images_labels_and_weights_alike():
    n = 8  # one class per image, so a mixed label names the partner
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 2, 2, 3))
    y, w = np.eye(n, dtype=np.float32), np.arange(1, n + 1, dtype=np.float32)
    xm, ym, wm = dataset._mix(x, y, w, 0.4, np.random.default_rng(0))
    own = ym.diagonal()
    assert np.all(own >= 0.5) and np.any(own < 1.0)  # each image keeps the larger share
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    for i in range(n):
        rest = ym[i].copy()
        rest[i] = 0
        j = int(rest.argmax()) if rest.max() > 0 else i
        lam = own[i] if j != i else 1.0
        np.testing.assert_allclose(xm[i], lam * i + (1 - lam) * j, rtol=1e-5)
        assert wm[i] == pytest.approx(lam * w[i] + (1 - lam) * w[j])
    # in batches: off by default, and on it changes images but not their count or dtype
    labels = np.arange(8) % 4
    plain = CellBatches(images(8), labels, 4, SPEC, batch_size=8)[0]
    mixed = CellBatches(images(8), labels, 4, SPEC, batch_size=8, mixup=0.4)[0]
    assert mixed[0].shape == plain[0].shape and mixed[0].dtype == np.float32
    assert not np.array_equal(mixed[0], plain[0]) and np.array_equal(plain[1].max(1), np.ones(8))


def test_prepared_images_are_cached_and_reused(tmp_path, monkeypatch):
    make_cell_dataset(tmp_path / "d", cells_per_class=1, copies_per_cell=2, size=(160, 120))
    image_set = list_images(tmp_path / "d")
    spec = PreprocessSpec(height=24, width=24, crop=CropSpec("nucleus", 75))
    first = load_cached(image_set, spec, tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "images").glob("*.npz"))) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(dataset, "load_images", no_decoding)
    again = load_cached(image_set, spec, tmp_path / "cache")
    np.testing.assert_array_equal(first.images, again.images)
    assert [r.path for r in again.records] == [r.path for r in first.records]
    other = PreprocessSpec(height=20, width=20, crop=CropSpec("nucleus", 75))
    with pytest.raises(AssertionError, match="decoded again"):  # another spec: another key
        load_cached(image_set, other, tmp_path / "cache")
