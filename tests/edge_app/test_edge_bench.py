"""`wbc-edge bench` on the tiny bundle: every artifact timed against its bare interpreter."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from repo_paths import REPO
from synthetic import edge_field, write_rgb

from wbc_edge.core.bundle import load_bundle
from wbc_edge.edge_app.bench import cpu_description, load_frames, run_bench, simd_level
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.macs import artifact_macs

pytestmark = pytest.mark.edge

# The fixture's CNN (tests/fixtures/make_bundle.py) on 32x32x3: conv 3x3 -> 8, pool,
# conv 3x3 -> 16, pool, dense 1024 -> 16, dense 16 -> 4.
TINY_MACS = 32 * 32 * 8 * 27 + 16 * 16 * 16 * 72 + 1024 * 16 + 16 * 4


def _fields(tmp_path: Path) -> Path:
    for i in range(3):
        write_rgb(tmp_path / "fields" / f"{i}.png", edge_field(30 + i, 1 + i % 2))
    return tmp_path / "fields"


def test_bench_times_every_artifact_against_its_bare_interpreter(edge_bundle, tmp_path) -> None:
    bundle = load_bundle(edge_bundle)
    frames = load_frames(str(_fields(tmp_path)))
    results = run_bench(bundle, frames, "field", 2.0, threads=1, passes=2)
    runnable = {(a.format, a.precision) for a in bundle.artifacts if a.format != "keras"}
    assert {(r.artifact.format, r.artifact.precision) for r in results} == runnable
    for r in results:
        assert len(r.pipeline) == len(r.bare) == 2 * len(frames)
        assert r.cells[:3] == [1, 2, 1]  # the frames' white cells, found in every pass
        assert all(lat >= p for lat, p in zip(r.latency, r.pipeline, strict=True))
        if r.artifact.format != "onnx" or importlib.util.find_spec("onnx"):
            assert r.macs == TINY_MACS, r.label


def test_bench_command_prints_the_table(edge_bundle, tmp_path, capsys) -> None:
    src = str(_fields(tmp_path))
    args = ["bench", "--model", str(edge_bundle), "--source", src, "--threads", "1"]
    assert main([*args, "--passes", "1", "--runtime", "litert", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^CPU: .+ SIMD \S+", out, re.M)
    row = next(line for line in out.splitlines() if line.startswith("tflite int8"))
    assert f"{TINY_MACS / 1e6:.1f}" in row and re.search(r"\d\.\d\dx", row)
    assert "bare interp." in out and "latency" in out
    # benchmarks/bench_versions.py reads the same row: each stage's p50 and the ratio
    rows = _bench_versions().rows_of(out)
    p50s = [float(cell.split("/")[0]) for cell in row.split() if "/" in cell][:-1]
    assert rows == {"tflite int8 on litert": [*p50s, float(re.search(r"(\S+)x", row)[1])]}


def _bench_versions():
    path = REPO / "benchmarks" / "bench_versions.py"
    spec = importlib.util.spec_from_file_location("bench_versions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_macs_of_an_unknown_format_are_not_guessed(tmp_path) -> None:
    assert artifact_macs(tmp_path / "model.keras", "keras") is None
    assert artifact_macs(tmp_path / "missing.tflite", "tflite") is None


def test_simd_level_and_cpu_name(tmp_path) -> None:
    assert simd_level({"avx2", "avx512f", "avx512_vnni"}) == "AVX-512 (VNNI)"
    assert simd_level({"sse4_2", "avx", "avx2", "fma"}) == "AVX2"
    assert simd_level({"fp", "asimd", "asimddp"}) == "NEON (dot product)"
    pi = tmp_path / "cpuinfo"
    pi.write_text(
        "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n\n"
        "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    text = cpu_description(pi)
    assert text.startswith("Cortex-A72, Raspberry Pi 4 Model B Rev 1.4") and "SIMD NEON" in text
