"""Tests for tests/synthetic.py: determinism, shapes, the Kaggle-like tree, fields and stain."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import (
    CLASSES,
    SyntheticImage,
    augment_copy,
    make_cell_dataset,
    render_cell,
    render_field,
)

NAME = re.compile(r"^_(\d+)_(\d+)\.(jpeg|png)$")


def stain(rgb: np.ndarray) -> np.ndarray:
    """The nucleus stain signal: B - G > 60."""
    return (rgb[..., 2].astype(np.int16) - rgb[..., 1].astype(np.int16)) > 60


def rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


@pytest.mark.parametrize("label", CLASSES)
def test_render_cell_shape_dtype_determinism(label: str) -> None:
    a, box_a = render_cell(label, rng(1))
    b, box_b = render_cell(label, rng(1))
    c, _ = render_cell(label, rng(2))
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and box_a == box_b
    assert not np.array_equal(a, c)
    x0, y0, x1, y1 = box_a
    assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
    assert 60 <= x1 - x0 <= 140 and 60 <= y1 - y0 <= 140  # ~0.33*width, class-dependent
    assert x0 < 160 < x1 and y0 < 120 < y1  # near the centre


def test_render_cell_size_and_diameter() -> None:
    rgb, (x0, _, x1, _) = render_cell("MONOCYTE", rng(3), size=(160, 120), cell_diameter=40)
    assert rgb.shape == (120, 160, 3)
    assert 30 <= x1 - x0 <= 55
    with pytest.raises(ValueError):
        render_cell("BASOPHIL", rng(3))


@pytest.mark.parametrize("size", [(320, 240), (160, 120)])
@pytest.mark.parametrize("label", CLASSES)
def test_render_cell_box_holds_the_stain(label: str, size: tuple[int, int]) -> None:
    for k in range(3):
        rgb, (x0, y0, x1, y1) = render_cell(label, rng(CLASSES.index(label), k), size)
        mask = stain(rgb)
        assert mask.sum() > 0.01 * mask.size  # a nucleus is there
        assert mask[y0:y1, x0:x1].sum() >= 0.9 * mask.sum()


def test_classes_differ_in_nucleus_and_cell_size() -> None:
    """Lymphocyte nuclei fill their (small) cells, neutrophil lobes are small."""
    fill = {}
    for label in CLASSES:
        cells = [render_cell(label, rng(7, k)) for k in range(3)]
        fill[label] = np.mean([stain(c)[y0:y1, x0:x1].mean() for c, (x0, y0, x1, y1) in cells])
    assert fill["LYMPHOCYTE"] > 0.45 > fill["MONOCYTE"] > fill["NEUTROPHIL"]
    assert fill["EOSINOPHIL"] > fill["NEUTROPHIL"]


def test_augment_copy() -> None:
    src, _ = render_cell("EOSINOPHIL", rng(0), size=(160, 120))
    a, b = augment_copy(src, rng(5)), augment_copy(src, rng(5))
    assert a.shape == src.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, src)
    copies = [augment_copy(src, rng(5, k)) for k in range(8)]
    corners = [c[[0, 0, -1, -1], [0, -1, 0, -1]] for c in copies]
    assert any((x == 0).all() for x in corners)  # rotations leave black corners
    assert not (src == 0).all(axis=2).any()  # a source cell has none


def test_make_cell_dataset_tree(tmp_path: Path) -> None:
    records = make_cell_dataset(tmp_path, cells_per_class=3, copies_per_cell=4, seed=1)
    assert len(records) == 4 * 3 * 4
    assert all(isinstance(r, SyntheticImage) for r in records)
    numbers = []
    for label in CLASSES:
        files = sorted(p.name for p in (tmp_path / label).iterdir())
        assert len(files) == 12 == len(set(files))
        matches = [NAME.match(f) for f in files]
        assert all(matches)
        n_values = Counter(int(m.group(1)) for m in matches)
        assert n_values == dict.fromkeys(range(3), 4)
        numbers += [int(m.group(2)) for m in matches]
        mine = [r for r in records if r.label == label]
        assert {r.path.name for r in mine} == set(files)
        assert all(r.path.parent == Path(label) for r in mine)
        assert Counter(r.cell_id for r in mine) == {f"{label}-{k}": 4 for k in range(3)}
    assert len(numbers) == len(set(numbers))
    cells_per_n = defaultdict(set)
    for r in records:
        cells_per_n[r.label, NAME.match(r.path.name).group(1)].add(r.cell_id)
    assert max(len(v) for v in cells_per_n.values()) > 1  # N does not identify the cell
    img = cv2.imread(str(tmp_path / records[0].path))
    assert img.shape == (120, 160, 3)


def test_make_cell_dataset_deterministic(tmp_path: Path) -> None:
    kwargs = {"cells_per_class": 2, "copies_per_cell": 2, "seed": 4}
    a = make_cell_dataset(tmp_path / "a", **kwargs)
    b = make_cell_dataset(tmp_path / "b", **kwargs)
    assert a == b
    for r in a:
        assert (tmp_path / "a" / r.path).read_bytes() == (tmp_path / "b" / r.path).read_bytes()
    c = make_cell_dataset(tmp_path / "c", **{**kwargs, "seed": 5})
    assert [r.path for r in c] != [r.path for r in a]


def test_make_cell_dataset_split_dict_and_png(tmp_path: Path) -> None:
    counts = {"EOSINOPHIL": 2, "MONOCYTE": 1}
    train = make_cell_dataset(
        tmp_path, cells_per_class=counts, copies_per_cell=2, split="TRAIN", fmt="png"
    )
    test = make_cell_dataset(
        tmp_path, cells_per_class=counts, copies_per_cell=2, split="TEST", fmt="png"
    )
    assert sorted(p.name for p in (tmp_path / "TRAIN").iterdir()) == ["EOSINOPHIL", "MONOCYTE"]
    assert Counter(r.label for r in train) == {"EOSINOPHIL": 4, "MONOCYTE": 2}
    assert all((tmp_path / "TRAIN" / r.path).is_file() for r in train)
    assert all(r.path.suffix == ".png" for r in train)
    # Same seed: the splits share source cells (Kaggle's leak) but not their copies.
    assert {r.cell_id for r in train} == {r.cell_id for r in test}
    first = cv2.imread(str(tmp_path / "TRAIN" / train[0].path))
    assert all(not np.array_equal(first, cv2.imread(str(tmp_path / "TEST" / r.path))) for r in test)
    with pytest.raises(ValueError):
        make_cell_dataset(tmp_path, cells_per_class={"BASOPHIL": 1})


def _sift_inliers(a: np.ndarray, b: np.ndarray) -> int:
    """RANSAC inliers of SIFT matches between a and b or mirrored b (copies may be flipped)."""
    sift = cv2.SIFT_create()
    ka, da = sift.detectAndCompute(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), None)
    best = 0
    for other in (b, np.ascontiguousarray(b[:, ::-1])):
        kb, db = sift.detectAndCompute(cv2.cvtColor(other, cv2.COLOR_RGB2GRAY), None)
        pairs = cv2.BFMatcher().knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
        if len(good) < 3:
            continue
        pa = np.float32([ka[m.queryIdx].pt for m in good])
        pb = np.float32([kb[m.trainIdx].pt for m in good])
        _, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC)
        best = max(best, 0 if inliers is None else int(inliers.sum()))
    return best


@pytest.mark.skipif(not hasattr(cv2, "SIFT_create"), reason="OpenCV without SIFT")
def test_copies_of_one_cell_match_and_different_cells_do_not() -> None:
    for ci, label in enumerate(CLASSES):
        src = [render_cell(label, rng(ci, k), size=(160, 120))[0] for k in range(2)]
        copies = [[augment_copy(s, rng(ci, k, j)) for j in range(2)] for k, s in enumerate(src)]
        assert _sift_inliers(copies[0][0], copies[0][1]) >= 30
        assert _sift_inliers(copies[1][0], copies[1][1]) >= 30
        assert _sift_inliers(copies[0][0], copies[1][0]) <= 15


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("n_cells", [1, 2, 3])
def test_render_field_boxes(n_cells: int) -> None:
    for seed in range(2):
        rgb, boxes, labels = render_field(rng(seed), n_cells=n_cells, cell_diameter=150)
        again, boxes2, labels2 = render_field(rng(seed), n_cells=n_cells, cell_diameter=150)
        assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
        assert np.array_equal(rgb, again) and boxes == boxes2 and labels == labels2
        assert len(boxes) == len(labels) == n_cells and set(labels) <= set(CLASSES)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
            assert all(not _overlap(boxes[i], other) for other in boxes[i + 1 :])
        mask = stain(rgb)
        inside = sum(mask[y0:y1, x0:x1].sum() for x0, y0, x1, y1 in boxes)
        assert inside >= 0.95 * mask.sum()


def test_render_field_labels_and_errors() -> None:
    _, boxes, labels = render_field(rng(0), n_cells=2, labels=["MONOCYTE", "LYMPHOCYTE"])
    assert labels == ["MONOCYTE", "LYMPHOCYTE"] and len(boxes) == 2
    with pytest.raises(ValueError):
        render_field(rng(0), n_cells=2, labels=["MONOCYTE"])
    with pytest.raises(ValueError):
        render_field(rng(0), n_cells=9, labels=["MONOCYTE"] * 9)


@pytest.mark.parametrize("seed", range(4))
def test_render_field_without_cells_has_no_stained_area(seed: int) -> None:
    rgb, boxes, labels = render_field(rng(seed), n_cells=0)
    assert boxes == [] and labels == []
    count, _, stats, _ = cv2.connectedComponentsWithStats(stain(rgb).astype(np.uint8))
    assert count == 1 or stats[1:, cv2.CC_STAT_AREA].max() <= 30
    assert rgb[..., 0].mean() > 150  # RBCs and pale background, not an empty frame
