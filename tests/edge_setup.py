"""What the edge tests that run the shipped default share: its paths, and the skip without a
runtime (an install with none of the device's runtimes cannot classify)."""

from __future__ import annotations

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
