"""Shared fixtures: small generated data, never ../shared; the committed edge bundle."""

from __future__ import annotations

import ast
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import make_cell_dataset


@pytest.fixture(scope="session")
def cell_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A Kaggle-like tree: 4 classes x 3 source cells x 4 augmented copies, 160x120 JPEGs."""
    root = tmp_path_factory.mktemp("cells")
    records = make_cell_dataset(root, cells_per_class=3, copies_per_cell=4, seed=1)
    return root, records


EDGE_BUNDLE = Path(__file__).parent / "fixtures" / "tiny-bundle"
EDGE_ONLY = importlib.util.find_spec("keras") is None  # the device's install: no TensorFlow


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In an edge-only install, collect only the test modules marked `edge` (importing the
    others would fail: they import TensorFlow, so the mark is read from the source's syntax)."""
    if not EDGE_ONLY or not collection_path.name.startswith("test_"):
        return None
    return not marks_edge(collection_path)


def marks_edge(path: Path) -> bool:
    """Whether a test module uses `pytest.mark.edge` as code (pytestmark or a decorator), not
    merely in a comment or a string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return any(
        isinstance(node, ast.Attribute) and ast.unparse(node) == "pytest.mark.edge"
        for node in ast.walk(tree)
    )


@pytest.fixture(scope="session")
def edge_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session's copy of the committed tiny bundle (every device format and precision, no
    Keras model): what the edge tests run, with no TensorFlow anywhere. Regenerate it with
    `python -m tests.fixtures.make_bundle`."""
    out = tmp_path_factory.mktemp("edge-bundle") / "tiny-bundle"
    shutil.copytree(EDGE_BUNDLE, out)
    return out


@pytest.fixture(scope="session", autouse=True)
def _history_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs with --report are recorded in a run history: never the user's, always the test
    session's (session scope: module fixtures that run the CLI come after it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WBC_HISTORY", str(tmp_path_factory.mktemp("history") / "history.sqlite"))
        yield
