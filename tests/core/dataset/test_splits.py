from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import ImageRecord
from wbc_edge.core.errors import DataError


def dataset(n_groups=(7, 5, 3, 11), copies=(4, 9, 13, 2), seed=0):
    """Labels and groups: class c has n_groups[c] cells with about copies[c] images each."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for c, (k, m) in enumerate(zip(n_groups, copies, strict=True)):
        for g in range(k):
            n = m + int(rng.integers(0, 3))
            labels += [f"C{c}"] * n
            groups += [f"C{c}-{g}"] * n
    order = rng.permutation(len(labels))
    return [labels[i] for i in order], [groups[i] for i in order]


@pytest.mark.parametrize("fractions", [[0.8, 0.1, 0.1], [0.7, 0.3]])
def test_random_split_is_stratified_within_one_image(fractions):
    labels, _ = dataset()
    sides = splits.stratified_random(labels, fractions, seed=3)
    names = splits.side_names(fractions)
    for cls, n in Counter(labels).items():
        for side, frac in zip(names, fractions, strict=True):
            got = sum(1 for c, s in zip(labels, sides, strict=True) if c == cls and s == side)
            assert abs(got - frac * n) <= 1, (cls, side, got, frac * n)


def test_random_split_is_deterministic_from_seed():
    labels, _ = dataset()
    a = splits.stratified_random(labels, [0.8, 0.1, 0.1], seed=1)
    assert a == splits.stratified_random(labels, [0.8, 0.1, 0.1], seed=1)
    assert a != splits.stratified_random(labels, [0.8, 0.1, 0.1], seed=2)


def test_grouped_split_never_puts_a_cell_on_two_sides():
    labels, groups = dataset()
    sides = splits.stratified_grouped(labels, groups, [0.6, 0.2, 0.2], seed=0)
    assert splits.group_overlap(groups, sides) == set()
    assert set(sides) == {"train", "val", "test"}
    per = splits.summarise(labels, sides)
    for cls in set(labels):  # every side of every class with >= 3 cells gets some images
        assert all(per[s].get(cls, 0) > 0 for s in ("train", "val", "test"))
    assert sides == splits.stratified_grouped(labels, groups, [0.6, 0.2, 0.2], seed=0)


def test_random_split_leaks_groups_which_is_why_grouped_exists():
    labels, groups = dataset()
    sides = splits.stratified_random(labels, [0.8, 0.2], seed=0)
    assert len(splits.group_overlap(groups, sides)) > 0


def test_grouped_kfold_balances_and_separates():
    labels, groups = dataset()
    sides = splits.kfold(labels, 3, seed=0, groups=groups)
    assert splits.group_overlap(groups, sides) == set()
    counts = Counter(sides)
    assert set(counts) == {"fold0", "fold1", "fold2"}
    assert max(counts.values()) - min(counts.values()) < 0.25 * len(labels) / 3


def test_plain_kfold_is_stratified():
    labels, _ = dataset()
    sides = splits.kfold(labels, 4, seed=0)
    for cls, n in Counter(labels).items():
        for f in range(4):
            got = sum(1 for c, s in zip(labels, sides, strict=True) if c == cls and s == f"fold{f}")
            assert abs(got - n / 4) <= 1


def test_group_spanning_two_classes_is_refused():
    with pytest.raises(DataError, match="two classes"):
        splits.stratified_grouped(["A", "B", "A", "B"], ["g", "g", "h", "i"], [0.5, 0.5], 0)


def test_bad_fractions():
    assert splits.parse_fractions("80/10/10") == pytest.approx([0.8, 0.1, 0.1])
    assert splits.parse_fractions("0.7,0.3") == pytest.approx([0.7, 0.3])
    with pytest.raises(DataError):
        splits.side_names([0.5, 0.6])
    with pytest.raises(DataError):
        splits.kfold(["A"], 1, 0)


def test_folder_split():
    recs = [ImageRecord(Path("TRAIN/A/x.jpg"), "A", "TRAIN"), ImageRecord(Path("t"), "A", "TEST")]
    assert splits.from_folders(recs) == ["train", "test"]
    with pytest.raises(DataError, match="no split folders"):
        splits.from_folders([ImageRecord(Path("a"), "A")])


def test_manifest_round_trip_and_bad_header(tmp_path):
    recs = [ImageRecord(Path("A/x.jpg"), "A"), ImageRecord(Path("B/y.jpg"), "B")]
    path = tmp_path / "m.csv"
    splits.write_manifest(path, recs, ["g1", "g2"], ["train", "val"])
    rows = splits.read_manifest(path)
    assert [(r.path, r.label, r.group, r.side) for r in rows] == [
        ("A/x.jpg", "A", "g1", "train"),
        ("B/y.jpg", "B", "g2", "val"),
    ]
    path.write_text("file,label\nx,y\n")
    with pytest.raises(DataError, match=r"m\.csv: header must be path,class,group,side"):
        splits.read_manifest(path)
