"""Parity never calls training images held-out: by name, by source cell, by content; the split
manifest is relocatable; accuracy control's tuning part is disjoint by cell (no TensorFlow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_cell_dataset
from tiny_bundle import SPEC

from wbc_edge.convert.calibration import parity_set, training_root
from wbc_edge.convert.held_out import split_by_cell
from wbc_edge.core.bundle import new_bundle
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.dataset.splits import stratified_grouped, write_manifest
from wbc_edge.core.errors import DataError, WbcError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A data tree (4 classes x 2 cells x 3 copies), a bundle whose manifest puts one cell per
    class on each side, and the ground truth cell of every file."""
    work = tmp_path_factory.mktemp("held-out")
    data = work / "data"
    made = make_cell_dataset(data, cells_per_class=2, copies_per_cell=3, seed=7)
    cell_of = {r.path.as_posix(): r.cell_id for r in made}
    images = list_images(data)
    groups = [cell_of[r.path.as_posix()] for r in images.records]
    sides = stratified_grouped([r.label for r in images.records], groups, [0.5, 0.5], seed=0)
    side_of = {r.path.as_posix(): s for r, s in zip(images.records, sides, strict=True)}
    bundle = new_bundle(
        work / "bundle",
        "t",
        images.classes,
        SPEC,
        data=str(data),
        split_manifest="split.csv",
    )
    write_manifest(bundle.root / "split.csv", images.records, groups, sides)
    return bundle, data, side_of, cell_of


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_training_copy_as_parity_data_keeps_only_the_held_out_cells(trained, tmp_path):
    """The issue's reproduction: --parity-data pointed at a copy of the training data."""
    bundle, data, side_of, _ = trained
    held = parity_set(bundle, copy_tree(data, tmp_path / "copy"))
    assert held.files and {side_of[f] for f in held.files} == {"val"}
    sel = held.selection
    assert sel.candidates == len(side_of) and sel.kept == len(held.files)
    assert sum(sel.dropped.values()) == sum(s == "train" for s in side_of.values())
    assert sel.training_checked and "split.csv" in held.selection.describe()


def test_a_renamed_copy_is_dropped_by_its_bytes_or_by_its_recovered_cell(trained, tmp_path):
    bundle, data, side_of, cell_of = trained
    train = sorted(f for f, s in side_of.items() if s == "train")
    held_out = sorted(f for f, s in side_of.items() if s == "val")
    folder = tmp_path / "parity"
    for f in held_out:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / f, folder / f)
    same_bytes = Path(train[0]).parent / "renamed_copy.jpeg"
    shutil.copy(data / train[0], folder / same_bytes)
    # another augmented copy of a training cell, under a name no table knows: only a recovered-
    # groups CSV over both sets (`wbc-train groups`) says which cell it is
    other = Path(train[1]).parent / "another_copy.jpeg"
    shutil.copy(data / train[1], folder / other)
    with open(folder / other, "ab") as fh:
        fh.write(b"\0")  # different bytes, still a decodable JPEG
    csv = tmp_path / "groups.csv"
    rows = [f"{f},{Path(f).parent.name},{cell_of[f]}" for f in side_of]
    rows.append(f"{other.as_posix()},{other.parent.name},{cell_of[train[1]]}")
    csv.write_text("path,class,group\n" + "\n".join(rows) + "\n")

    without = parity_set(bundle, folder)  # no table knows it: its pixels give it away
    assert sorted(without.files) == held_out and without.selection.unknown_cells == 0
    assert without.selection.dropped == {
        "same bytes as a training image": 1,
        "another copy of a training source cell (by its pixels)": 1,
    }

    held = parity_set(bundle, folder, groups=csv)
    assert sorted(held.files) == held_out
    assert held.selection.unknown_cells == 0
    assert held.selection.dropped == {
        "same bytes as a training image": 1,
        "another copy of a training source cell (by recovered groups (groups.csv, --groups))": 1,
    }


def test_only_training_images_is_refused_in_one_line(trained):
    bundle, data, side_of, _ = trained
    folder = data.parent / "train-only"
    for f, side in side_of.items():
        if side == "train":
            (folder / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data / f, folder / f)
    with pytest.raises(DataError, match="was seen in training or calibration") as err:
        parity_set(bundle, folder)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)


def test_without_a_manifest_the_report_says_nothing_was_checked(trained, tmp_path):
    _, data, _, _ = trained
    bare = new_bundle(tmp_path / "b", "t", sorted(p.name for p in data.iterdir()), SPEC)
    held = parity_set(bare, data)
    assert not held.selection.training_checked and not held.selection.dropped
    assert "NOT checked against the training images" in held.selection.describe()


def test_the_manifest_is_relocatable_with_data_root(trained, tmp_path):
    bundle, data, side_of, _ = trained
    moved = copy_tree(data, tmp_path / "elsewhere")
    elsewhere = new_bundle(
        bundle.root, "t", bundle.classes, SPEC, data="data/as/the/user/gave/it",
        split_manifest="split.csv",
    )  # fmt: skip
    with pytest.raises(WbcError, match="pass --data-root"):
        training_root(elsewhere)
    with pytest.raises(DataError, match="pass --data-root"):
        parity_set(elsewhere, data_root=tmp_path)  # a folder, but not the manifest's
    held = parity_set(elsewhere, data_root=moved)
    assert held.root == moved and {side_of[f] for f in held.files} == {"val"}
    assert "names, cells and contents" in held.selection.describe()


def test_tuning_and_gate_parts_share_no_source_cell():
    labels = np.repeat([0, 0, 1, 1, 2, 3], 3)
    groups = [f"c{i // 3}" for i in range(len(labels))]
    tune, gate = split_by_cell(labels, groups)
    assert len(tune) and len(gate) and len(tune) + len(gate) == len(labels)
    assert not {groups[i] for i in tune} & {groups[i] for i in gate}
    assert set(labels[gate]) | set(labels[tune]) == {0, 1, 2, 3}
    assert set(labels[gate]) & set(labels[tune]) == {0, 1}  # a two-cell class is in both


def test_new_copies_of_training_cells_are_found_by_their_pixels(trained, tmp_path):
    """Other augmented copies of the same source cells, under names no table knows (as
    Kaggle's TEST split holds copies of TRAIN's cells): only the pixels say which cell."""
    bundle, _, side_of, cell_of = trained
    side_of_cell = {cell_of[f]: side for f, side in side_of.items()}
    made = make_cell_dataset(tmp_path, cells_per_class=2, copies_per_cell=2, seed=7, split="NEW")
    held = parity_set(bundle, tmp_path / "NEW")
    truth = {r.path.as_posix(): side_of_cell[r.cell_id] for r in made}
    assert sorted(held.files) == sorted(f for f, side in truth.items() if side == "val")
    n_train = sum(side == "train" for side in truth.values())
    assert held.selection.dropped == {
        "another copy of a training source cell (by its pixels)": n_train
    }
    assert "by their pixels against 4 seen cells" in held.selection.describe()
