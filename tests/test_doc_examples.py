"""The command outputs quoted in README.md and docs/*.md are what the commands print now
(`tools/doc_examples.py --check`, on the shipped default bundle and the sample frames)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.edge


def _tool():
    spec = importlib.util.spec_from_file_location(
        "doc_examples", ROOT / "tools" / "doc_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass needs its module registered
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_marked_example_matches_a_run() -> None:
    tool = _tool()
    blocks = [b for doc in tool.docs() for b in tool.find_blocks(doc)]
    assert any(b.doc.name == "README.md" for b in blocks)
    assert any(b.doc.name == "edge.md" for b in blocks)
    problems = tool.check(blocks)
    assert not problems, "\n\n".join(problems) + "\n\nrefresh: python tools/doc_examples.py --write"


def test_normalising_keeps_counts_and_hides_only_timings() -> None:
    tool = _tool()
    stats = [
        "  EOSINOPHIL      3   50.0",
        "timing: 6 frames, 35.6 frames/s",
        "  stage        p50 ms  p95 ms",
        "  infer           0.5     1.1",
        "2026-12-04T21:38:37+00:00  sample S-1",
    ]
    assert tool.normalise(stats, cpu=False) == [
        "  EOSINOPHIL      3   50.0",
        "timing: 6 frames, # frames/s",
        "  stage        p50 ms  p95 ms",
        "  infer # #",
        "<time>  sample S-1",
    ]
    row = "openvino-int8  model_int8.xml     openvino (bf16)     0.9950     0.0678    0.99   PASS"
    assert tool.normalise([row], cpu=True) == [
        "openvino-int8  model_int8.xml     openvino (#)     #     #    0.99   PASS"
    ]
    assert tool.normalise([row], cpu=False) == [row]


@pytest.mark.slow
def test_a_drifted_block_is_named_with_its_diff() -> None:
    tool = _tool()
    block = tool.find_blocks(ROOT / "README.md")[0]
    block.quoted = [line.replace("EOSINOPHIL      3", "EOSINOPHIL      4") for line in block.quoted]
    (problem,) = tool.check([block])
    assert problem.startswith(f"README.md:{block.line} (wbc-edge classify")
    assert "-  EOSINOPHIL      4   50.0" in problem
    assert "+  EOSINOPHIL      3   50.0" in problem
