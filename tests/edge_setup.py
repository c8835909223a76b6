"""What the edge tests that run the shipped default share: its paths, the skip without a
runtime (an install with none of the device's runtimes cannot classify), the review server."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wbc_edge.core.runtime import runtime_available

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"
FRAMES = ROOT / "samples" / "frames"

needs_runtime = pytest.mark.skipif(
    not any(runtime_available(r) for r in ("litert", "onnxruntime", "openvino")),
    reason="no edge runtime installed",
)


@contextlib.contextmanager
def review_server(folder: Path) -> Iterator:
    """`wbc-edge review`'s server on an ephemeral loopback port, shut down on leaving."""
    from wbc_edge.edge_app.review import make_server

    srv = make_server(folder, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def run_child_without(code: str, forbidden: tuple[str, ...]) -> None:
    """Run `code` (which sets `rc`) in a fresh interpreter; assert rc == 0 and that none of the
    `forbidden` top-level packages was imported on the way."""
    check = (
        "import sys\n"
        f"{code}"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "assert rc == 0 and not bad, (rc, bad)\n"
        "print('CHILD-OK')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CHILD-OK" in done.stdout


def copy_of(report: Path, tmp_path: Path) -> Path:
    """A fresh copy of a module-scoped report folder for a test that changes it."""
    out = tmp_path / "report"
    shutil.copytree(report, out)
    return out
