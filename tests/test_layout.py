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
