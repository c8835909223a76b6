"""What the edge tests that run the shipped default share: its paths, the skip without a
runtime (an install with none of the device's runtimes cannot classify), the review server."""

from __future__ import annotations

import contextlib
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
