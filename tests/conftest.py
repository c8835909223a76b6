"""Shared fixtures: small generated data, never ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_cell_dataset


@pytest.fixture(scope="session")
def cell_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A Kaggle-like tree: 4 classes x 3 source cells x 4 augmented copies, 160x120 JPEGs."""
    root = tmp_path_factory.mktemp("cells")
    records = make_cell_dataset(root, cells_per_class=3, copies_per_cell=4, seed=1)
    return root, records
