"""The self-test sample `wbc-convert` writes, and the hashes that stop a corrupted file from
being run at all (on the tiny converted bundle; verify itself: test_verify.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_bundle import tiny_bundle  # noqa: F401  (session fixture)

from wbc_edge.convert.cli import main as convert_main
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import BundleError
from wbc_edge.core.selftest import SELFTEST_FILE, load_sample
from wbc_edge.edge_app.cli import main


def test_convert_writes_a_hashed_sample_of_the_parity_set(tiny_bundle: Path) -> None:  # noqa: F811
    bundle = load_bundle(tiny_bundle)
    rec = bundle.selftest
    assert rec is not None and rec.file == SELFTEST_FILE
    assert rec.contract_sha256 == bundle.contract_sha256
    sample = load_sample(bundle)
    assert sample.inputs.shape == (rec.n, 32, 32, 3) and sample.probs.shape == (rec.n, 4)
    with np.load(tiny_bundle / SELFTEST_FILE) as data:
        assert data["labels"].shape == (rec.n,) and data["webp"].dtype == np.uint8
    assert rec.n == bundle.parity["parity_set"]["n"]  # the tiny set is smaller than the default


def test_a_corrupted_weights_file_is_refused_by_edge_and_convert(tiny_bundle, tmp_path, capsys):  # noqa: F811
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    art = load_bundle(root).find("openvino", "int8")
    (weights,) = [root / f.file for f in art.extra_files]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)  # same size, zeros
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"extra_files\[0\]: model_int8\.bin does not match"):
        load_bundle(root)
    assert main(["verify", "--model", str(root)]) == 2
    assert convert_main([str(root), "--artifacts", "tflite-fp32"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("model_int8.bin does not match its recorded" in e for e in err)
    assert err[1].startswith("wbc-convert: ")
