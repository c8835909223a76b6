"""Quiet logs by default: native chatter on fd 2 hidden, shown with --verbose or on failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wbc_edge.core.runtime import runtime_available

pytestmark = pytest.mark.edge

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_native_stderr_hides_fd2_and_replays_it_on_failure() -> None:
    code = (
        "import os, sys\n"
        "from wbc_edge.core.quiet import native_stderr, quiet_env\n"
        "quiet_env(verbose=len(sys.argv) > 1)\n"
        "with native_stderr():\n"
        "    os.write(2, b'C++ NOISE\\n')\n"
        "print('python says', file=sys.stderr)\n"
        "try:\n"
        "    with native_stderr():\n"
        "        os.write(2, b'the cause\\n')\n"
        "        raise RuntimeError('boom')\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "C++ NOISE" not in done.stderr and "python says" in done.stderr
    assert "the cause" in done.stderr  # what a failing block printed is not lost


@pytest.mark.skipif(not runtime_available("litert"), reason="LiteRT not installed")
def test_classify_prints_no_runtime_noise_unless_verbose() -> None:
    base = [
        "-m",
        "wbc_edge.edge_app.cli",
        "classify",
        "--model",
        "models/default",
        "--runtime",
        "litert",
        "--source",
        "samples/frames/BloodImage_00000.jpg",
    ]

    def stderr(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, *base, *extra], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "XNNPACK" not in stderr() and stderr().strip() == ""
    assert "runtime: litert" in stderr("--verbose")
