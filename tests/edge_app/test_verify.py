"""`wbc-edge verify`: the bundle's self-test sample through this machine's runtimes (on the
committed edge bundle: no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.selftest import SELFTEST_FILE
from wbc_edge.edge_app.cli import main

pytestmark = pytest.mark.edge
RUNNABLE = ("tflite", "onnx", "openvino")


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rows(out: str) -> dict[str, list[str]]:
    """Table rows by artifact key."""
    return {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}


def test_verify_passes_where_parity_ran(edge_bundle: Path, capsys) -> None:
    assert main(["verify", "--model", str(edge_bundle)]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    bundle = load_bundle(edge_bundle)
    runnable = [a for a in bundle.artifacts if a.format in RUNNABLE and a.status != "failed"]
    assert set(table) == {f"{a.format}-{a.precision}" for a in runnable}
    assert all(r[-1] == "PASS" for r in table.values())
    fp32 = table["tflite-fp32"]
    assert float(fp32[-4]) == 1.0 and float(fp32[-3]) < 1e-4  # agreement, max |Δp|
    assert out.splitlines()[-1].startswith(f"PASS: {len(runnable)} of {len(runnable)} artifact")


def test_verify_fails_below_the_recorded_threshold(edge_bundle: Path, tmp_path, capsys):
    root = copy(edge_bundle, tmp_path / "b")
    bundle = load_bundle(root)
    with np.load(root / SELFTEST_FILE) as data:
        arrays = dict(data)
    arrays["probs"] = np.roll(arrays["probs"], 1, axis=1)  # what other kernels might answer
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (root / SELFTEST_FILE).write_bytes(buf.getvalue())
    rec = bundle.file_hash(SELFTEST_FILE)
    bundle.selftest = dataclasses.replace(
        bundle.selftest, sha256=rec.sha256, size_bytes=rec.size_bytes
    )
    save_bundle(bundle)
    assert main(["verify", "--model", str(root), "--artifact", "tflite-int8"]) == 1
    out = capsys.readouterr().out
    assert list(rows(out)) == ["tflite-int8"] and rows(out)["tflite-int8"][-1] == "FAIL"
    assert out.splitlines()[-1].startswith("FAIL: 0 of 1 artifact")


def test_verify_without_a_sample_or_with_an_unknown_artifact(edge_bundle, tmp_path, capsys):
    assert main(["verify", "--model", str(edge_bundle), "--artifact", "onnx-int8"]) == 2
    assert "no runnable artifact 'onnx-int8'" in capsys.readouterr().err
    root = copy(edge_bundle, tmp_path / "b")
    bundle = load_bundle(root)
    bundle.selftest = None
    save_bundle(bundle)
    assert main(["verify", "--model", str(root)]) == 2
    assert "has no self-test sample" in capsys.readouterr().err


def test_a_swapped_class_order_is_refused(edge_bundle, tmp_path, capsys):
    root = copy(edge_bundle, tmp_path / "b")
    data = json.loads((root / "bundle.json").read_text())
    data["classes"][:2] = data["classes"][1::-1]
    (root / "bundle.json").write_text(json.dumps(data))
    assert main(["verify", "--model", str(root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert all("contract_sha256" in e and "class order changed?" in e for e in err)
    assert len(err) == len(data["artifacts"]) + 1  # every artifact and the self-test sample
