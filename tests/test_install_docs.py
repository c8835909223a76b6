"""The install guides' pins agree with pyproject: Python 3.13 allowed, the Jetson's list is the
edge extra without the two wheels JetPack replaces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.edge

ROOT = Path(__file__).resolve().parents[1]


def project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def names(lines: list[str]) -> dict[str, str]:
    """{package: version spec} of requirement lines (markers dropped)."""
    out = {}
    for line in lines:
        line = line.split("#")[0].split(";")[0].strip()
        if line:
            m = re.match(r"([A-Za-z0-9_.-]+)(.*)", line)
            out[m[1].lower()] = m[2].strip()
    return out


def test_python_3_13_is_allowed() -> None:
    spec = project()["requires-python"]
    assert ">=3.10" in spec and re.search(r"<3\.(1[4-9])", spec), spec


def test_the_jetson_list_is_the_edge_extra_less_onnxruntime_and_pip_opencv() -> None:
    edge = names(project()["optional-dependencies"]["edge"])
    jetson = names((ROOT / "docs" / "jetson-requirements.txt").read_text().splitlines())
    assert "onnxruntime" not in jetson and "opencv-python-headless" not in jetson
    for name in ("ai-edge-litert", "openvino", "pillow", "jinja2"):
        assert jetson[name] == edge[name]
    assert jetson["numpy"] == ">=1.23,<2"
    assert "jetson-requirements.txt" in (ROOT / "docs" / "install-jetson.md").read_text()
