"""The bundles committed under models/ load under schema 2, with every file hashed, and the
default one verifies on this machine from its own self-test sample (no data needed)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from wbc_edge.core.bundle import SCHEMA_VERSION, load_bundle
from wbc_edge.core.runtime import runtime_available
from wbc_edge.edge_app.cli import main

pytestmark = pytest.mark.edge

MODELS = Path(__file__).resolve().parents[1] / "models"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny-bundle"
# where a development machine keeps things: a user's bundle must name none of them
MACHINE_PATH = re.compile(rb"(/tmp/|/root/|/home/|/work/|/Users/|[A-Z]:\\)")


@pytest.mark.parametrize("name", ["default", "custom-cnn-grouped"])
def test_committed_bundles_are_schema_2_with_every_file_hashed(name: str) -> None:
    bundle = load_bundle(MODELS / name)  # checks every hash, the .bin files included
    assert bundle.schema_version == SCHEMA_VERSION
    for art in bundle.artifacts:
        assert art.output_kind == "probabilities" and art.contract_sha256 == bundle.contract_sha256
        if art.format == "openvino":
            assert [f.file for f in art.extra_files] == [Path(art.file).stem + ".bin"]
        assert "weights_sha256" not in art.options


@pytest.mark.parametrize("root", [MODELS / "default", MODELS / "custom-cnn-grouped", FIXTURE])
def test_no_committed_bundle_text_names_a_machine_path(root: Path) -> None:
    texts = [p for p in root.rglob("*") if p.suffix in {".json", ".xml", ".md", ".csv", ".txt"}]
    assert any(p.suffix == ".xml" for p in texts)  # the OpenVINO IRs are among them
    found = [p.name for p in texts if MACHINE_PATH.search(p.read_bytes())]
    assert found == []


def test_the_default_bundle_verifies_here_from_its_own_sample(capsys) -> None:
    bundle = load_bundle(MODELS / "default")
    assert bundle.selftest is not None and bundle.selftest.n == 200
    assert (MODELS / "default" / bundle.selftest.file).stat().st_size < 2_100_000
    if not runtime_available("litert"):
        pytest.skip("needs ai-edge-litert")
    assert main(["verify", "--model", str(MODELS / "default"), "--artifact", "tflite-int8"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS: 1 of 1 artifact")


def test_an_old_bundle_without_output_kinds_is_probed_once_and_said(tmp_path, caplog) -> None:
    if not runtime_available("litert"):
        pytest.skip("needs ai-edge-litert")
    root = tmp_path / "old"
    shutil.copytree(MODELS / "default", root)
    data = json.loads((root / "bundle.json").read_text())
    for art in data["artifacts"]:
        art["output_kind"] = None
    (root / "bundle.json").write_text(json.dumps(data))
    cells = str(Path(__file__).resolve().parents[1] / "samples" / "cells")
    assert main(["classify", "--model", str(root), "--source", cells, "--mode", "cell"]) == 0
    said = [r.getMessage() for r in caplog.records if "declares no output kind" in r.getMessage()]
    assert len(said) == 1 and "decided once at load from a probe batch: probabilities" in said[0]
