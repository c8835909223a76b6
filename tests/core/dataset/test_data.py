import shutil

import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.dataset.data import list_images, load_images
from wbc_edge.core.errors import DataError
from wbc_edge.core.preprocess_spec import CropSpec, PreprocessSpec


def test_lists_a_class_tree_sorted(cell_tree):
    root, records = cell_tree
    images = list_images(root)
    assert images.classes == ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    assert images.counts() == {c: 12 for c in images.classes}
    assert sorted(r.path for r in records) == [r.path for r in images.records]
    assert images.labels().tolist() == [images.classes.index(r.label) for r in images.records]


def test_kaggle_layout_with_split_folders(tmp_path):
    make_cell_dataset(tmp_path, cells_per_class=1, copies_per_cell=2, split="TRAIN")
    make_cell_dataset(tmp_path, cells_per_class=1, copies_per_cell=1, split="TEST", seed=9)
    both = list_images(tmp_path)
    assert {r.split for r in both.records} == {"TRAIN", "TEST"}
    assert all(r.path.parts[0] == r.split for r in both.records)
    train = list_images(tmp_path, split="TRAIN")
    assert len(train.records) == 8 and train.records[0].split is None
    with pytest.raises(DataError, match="no split folder 'VAL'"):
        list_images(tmp_path, split="VAL")


def test_empty_or_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "nope")


def test_loader_skips_corrupt_and_cell_less_files_by_name(tmp_path, cell_tree):
    root = tmp_path / "data"
    shutil.copytree(cell_tree[0], root)
    (root / "MONOCYTE" / "broken.jpeg").write_bytes(b"\xff\xd8 truncated")
    blank = np.full((120, 160, 3), 225, np.uint8)
    from PIL import Image

    Image.fromarray(blank).save(root / "LYMPHOCYTE" / "empty.png")
    images = list_images(root)
    spec = PreprocessSpec(height=32, width=32, crop=CropSpec("nucleus", 75))
    loaded = load_images(images, spec)
    assert set(loaded.skipped) == {"MONOCYTE/broken.jpeg", "LYMPHOCYTE/empty.png"}
    assert "not a readable image" in loaded.skipped["MONOCYTE/broken.jpeg"]
    assert "no stained white-cell nucleus" in loaded.skipped["LYMPHOCYTE/empty.png"]
    assert loaded.images.shape == (48, 32, 32, 3) and len(loaded.records) == 48
