"""`wbc-train` input: hostile images skipped by name, two classes at least, every class on every
side of the split, or one clear line. No TensorFlow here: these checks run before it loads."""

from __future__ import annotations

import logging
import pathlib
import shutil
from pathlib import Path

import pytest
from synthetic import make_cell_dataset, png_header

from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import list_images, load_images
from wbc_edge.core.errors import DataError
from wbc_edge.core.preprocess_spec import CropSpec, PreprocessSpec
from wbc_edge.train.checks import check_split
from wbc_edge.train.cli import main


@pytest.fixture
def tree(tmp_path: Path, cell_tree) -> Path:
    root = tmp_path / "data"
    shutil.copytree(cell_tree[0], root)
    return root


def test_hostile_images_are_skipped_with_a_warning_naming_them(tree: Path, caplog) -> None:
    (tree / "MONOCYTE" / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (tree / "MONOCYTE" / "big.png").write_bytes(png_header(9000, 9000))
    tif = next((tree / "EOSINOPHIL").iterdir()).read_bytes()
    (tree / "EOSINOPHIL" / "flipped.tif").write_bytes(b"II*\x00" + b"\xff" * 4 + tif[8:])
    spec = PreprocessSpec(height=32, width=32, crop=CropSpec("nucleus", 75))
    with caplog.at_level(logging.WARNING):
        loaded = load_images(list_images(tree), spec)  # no DecompressionBombError
    bad = {"MONOCYTE/bomb.png", "MONOCYTE/big.png", "EOSINOPHIL/flipped.tif"}
    assert bad <= set(loaded.skipped)
    assert "too large" in loaded.skipped["MONOCYTE/bomb.png"]
    assert "9000x9000" in loaded.skipped["MONOCYTE/big.png"]
    for name in bad:
        assert any(name in r.getMessage() for r in caplog.records)
    assert len(loaded.records) == 48  # every good image kept


def test_unreadable_class_folder_is_named(tree: Path, monkeypatch, caplog) -> None:
    real = pathlib.Path.iterdir

    def iterdir(self):
        if self.name == "LYMPHOCYTE":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    with caplog.at_level(logging.WARNING):
        images = list_images(tree)
    assert "LYMPHOCYTE" not in images.classes
    assert any("LYMPHOCYTE" in r.getMessage() for r in caplog.records)


def test_one_class_folder_is_refused_before_training(tmp_path: Path, capsys) -> None:
    root = tmp_path / "one"
    make_cell_dataset(root, cells_per_class=2, copies_per_cell=2, seed=3)
    for extra in ("LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
        shutil.rmtree(root / extra)
    out = tmp_path / "bundle"
    assert main([str(root), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 2 classes" in err and "found 1 (EOSINOPHIL)" in err
    assert str(root) in err and not out.exists()


def test_a_class_with_one_source_cell_cannot_fill_a_three_way_split() -> None:
    labels = ["A"] * 6 + ["B"] * 3
    groups = ["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "b1"]  # B: one source cell
    sides = splits.stratified_grouped(labels, groups, [0.8, 0.1, 0.1], seed=0)
    with pytest.raises(DataError, match=r"class B \(1 source cells, 3 images\) gets no"):
        check_split(labels, groups, sides, "grouped-80/10/10", "grouped", "data")
    ok = splits.stratified_grouped(labels[:6], groups[:6], [0.8, 0.1, 0.1], seed=0)
    check_split(labels[:6], groups[:6], ok, "grouped-80/10/10", "grouped", "data")


def test_a_class_with_one_image_in_a_random_split_and_too_few_cells_for_kfold() -> None:
    labels = ["A"] * 10 + ["B"]
    groups = [f"f{i}" for i in range(11)]
    sides = splits.stratified_random(labels, [0.8, 0.1, 0.1], seed=0)
    with pytest.raises(DataError, match=r"class B .* gets no"):
        check_split(labels, groups, sides, "random-80/10/10", "random", "data")
    labels = ["A"] * 6 + ["B"] * 4
    groups = ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b1", "b2", "b2"]
    folds = splits.kfold(labels, 3, seed=0, groups=groups)
    with pytest.raises(DataError, match="smaller --kfold"):
        check_split(labels, groups, folds, "grouped-kfold3", "grouped", "data")


def test_split_folders_only_warn(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        check_split(
            ["A", "A", "B"], ["1", "2", "3"], ["train", "test", "train"], "folders", "folders", "d"
        )
    assert "class B" in caplog.text
