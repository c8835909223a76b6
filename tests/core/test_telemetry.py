"""OpenVINO telemetry is off in this project's processes: the package is never loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from repo_paths import REPO

from wbc_edge.core.runtime import runtime_available

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
pytestmark = [
    pytest.mark.edge,
    pytest.mark.skipif(not runtime_available("openvino"), reason="openvino missing"),
]


def run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_opening_the_openvino_runtime_never_loads_the_telemetry_package() -> None:
    out = run(
        "import sys\n"
        "from wbc_edge.core.bundle import load_bundle\n"
        "from wbc_edge.core.runtime import open_runtime\n"
        f"rt = open_runtime(load_bundle({str(DEFAULT)!r}), runtime='openvino')\n"
        "import openvino.tools.ovc.telemetry_utils as t\n"
        "loaded = [m for m, v in sys.modules.items() if m.startswith('openvino_tel') and v]\n"
        "print(t.tm.__name__, loaded)\n"
    )
    assert out == "openvino.tools.ovc.telemetry_stub []"


def test_openvino_imported_first_is_switched_to_the_stub() -> None:
    out = run(
        "import openvino, openvino.tools.ovc.telemetry_utils as t\n"
        "from wbc_edge.core.telemetry import disable_openvino_telemetry\n"
        "before = t.tm.__name__\n"
        "disable_openvino_telemetry()\n"
        "print(before, t.tm.__name__)\n"
    )
    assert out == "openvino_telemetry openvino.tools.ovc.telemetry_stub"
