"""The layout: one import name; the core imports no stage; stages meet in the core.

Written by the relayout script; the picture in docs/architecture.md is drawn from the same
imports.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.edge
ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("core", "train", "convert", "edge_app")
ALLOWED = {  # what each package may import of the others
    "core": set(),
    "train": {"core"},
    "convert": {"core"},
    "edge_app": {"core"},
}
DATASET = "wbc_edge.core.dataset"  # the training-data tooling: the device never imports it


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("folder", FOLDERS)
def test_packages_import_only_the_core(folder: str) -> None:
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            assert parts[0] not in FOLDERS, f"{path.relative_to(ROOT)}: {name} (use wbc_edge.)"
            if parts[0] == "wbc_edge" and len(parts) > 1 and parts[1] != folder:
                assert parts[1] in ALLOWED[folder], f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("folder", ("core", "edge_app"))
def test_the_device_never_imports_the_training_data_tooling(folder: str) -> None:
    """`edge_app/` and the device's core (`core/` outside `core/dataset/`) run without
    `core.dataset`; `core/dataset/`, being part of the core, imports no stage (the test above)."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path.is_relative_to(ROOT / "core" / "dataset"):
            continue
        for name in _imports(path):
            assert name != DATASET and not name.startswith(DATASET + "."), (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_tests_mirror_the_packages_and_never_import_each_other() -> None:
    """A test module lies in tests/ (the whole project) or in the folder of the package it
    tests (tests/core, tests/core/dataset, tests/train, tests/convert, tests/edge_app), and what
    tests share is a helper module in tests/, never another test module."""
    tests = ROOT / "tests"
    folders = {tests, *(tests / f for f in FOLDERS), tests / "core" / "dataset"}
    modules = sorted(tests.rglob("test_*.py"))
    assert len({m.name for m in modules}) == len(modules), "two test modules share a name"
    for path in modules:
        if "fixtures" in path.relative_to(tests).parts:
            continue
        assert path.parent in folders, f"{path.relative_to(ROOT)}: not in a package's folder"
        for name in _imports(path):
            assert not name.split(".")[0].startswith("test_"), f"{path.relative_to(ROOT)}: {name}"


def test_pyproject_lists_every_package_folder() -> None:
    tomllib = pytest.importorskip("tomllib")
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    listed = set(tool["setuptools"]["packages"])
    found = {
        ".".join(("wbc_edge", f, *init.parent.relative_to(ROOT / f).parts))
        for f in FOLDERS
        for init in (ROOT / f).rglob("__init__.py")
    }
    assert listed == found
    assert tool["setuptools"]["package-dir"] == {f"wbc_edge.{f}": f for f in FOLDERS}
    for package, patterns in tool["setuptools"]["package-data"].items():
        assert package in listed, package
        folder = ROOT.joinpath(*package.split(".")[1:])
        for pattern in patterns:
            assert any(folder.glob(pattern)), f"{package}: {pattern} matches no file"


def test_wbc_train_runs_from_a_folder_holding_a_train_py(tmp_path: Path) -> None:
    """A user's own train.py (and convert.py) in the working folder shadows nothing of ours."""
    for name in ("train.py", "convert.py", "edge_app.py", "core.py"):
        (tmp_path / name).write_text("raise SystemExit('shadowed: a user module was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the working folder first on the path
    script = Path(sys.executable).with_name("wbc-train")
    for cmd in ([sys.executable, "-m", "wbc_edge.train.cli", "--help"], [str(script), "--help"]):
        if not Path(cmd[0]).exists():
            continue
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "usage: wbc-train" in proc.stdout
