"""`wbc-convert BUNDLE --int8` without the training data: the calibration pack
(`--calibration-pack-only`) and the self-test sample carried in the bundle replace it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_bundle import build_tiny_bundle

from wbc_edge.convert.calibration_pack import PACK_FILE, load_pack
from wbc_edge.convert.cli import main
from wbc_edge.core.bundle import load_bundle, save_bundle

LOOSE = ["--min-agreement", "0", "--max-drop", "1", "--max-class-drop", "1"]


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"), convert=False)


@pytest.fixture(scope="module")
def packed(float_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with the calibration pack and self-test sample added (data present)."""
    dst = tmp_path_factory.mktemp("packed") / "bundle"
    shutil.copytree(float_bundle, dst)
    assert main([str(dst), "--calibration-pack-only", "--calibration-pack-images", "8"]) == 0
    return dst


def without_data(src: Path, dst: Path) -> Path:
    """A copy of the bundle whose recorded training data is not on this machine."""
    shutil.copytree(src, dst)
    bundle = load_bundle(dst)
    bundle.provenance["data"] = "not-here/TRAIN"
    save_bundle(bundle)
    return dst


def manifest(bundle_dir: Path) -> dict[str, tuple[str, str]]:
    """path -> (group, side) of the bundle's split.csv."""
    rows = [line.split(",") for line in (bundle_dir / "split.csv").read_text().split()[1:]]
    return {r[0]: (r[2], r[3]) for r in rows}


def test_pack_only_adds_training_side_crops_apart_from_the_selftest(packed: Path) -> None:
    bundle = load_bundle(packed)  # every hash checked, the pack's too
    pack, sample = bundle.calibration_pack, bundle.selftest
    assert pack is not None and pack.file == PACK_FILE and pack.n == 8
    assert sample is not None and pack.contract_sha256 == bundle.contract_sha256
    assert [a.format for a in bundle.artifacts] == ["keras"]  # nothing converted
    rows = manifest(packed)
    calib = load_pack(bundle)
    assert calib.images.shape == (8, 32, 32, 3) and len(set(calib.labels)) == 4
    assert {rows[f][1] for f in calib.files} == {"train"}
    held_out_cells = {g for g, side in rows.values() if side != "train"}
    assert not {rows[f][0] for f in calib.files} & held_out_cells  # kept apart by source cell
    assert "train side of split.csv" in pack.source
    assert bundle.provenance["data"] not in pack.source  # no machine path in bundle.json


def test_int8_runs_on_the_bundle_alone_and_says_what_calibrated_and_checked(
    packed: Path, tmp_path: Path, capsys
) -> None:
    root = without_data(packed, tmp_path / "alone")
    assert main([str(root), "--artifacts", "tflite-int8", *LOOSE]) == 0
    out = capsys.readouterr().out
    report = json.loads((root / "parity.json").read_text())
    n = load_bundle(root).selftest.n
    assert report["calibration"]["n"] == 8 and "calibration pack" in report["calibration"]["source"]
    assert report["parity_set"]["n"] == n and "self-test sample" in report["parity_set"]["source"]
    assert "smaller than a full held-out set" in report["parity_set"]["note"]
    assert f"on {n} held-out self-test images" in out and "calibration pack" in out
    page = (root / "parity.html").read_text()
    assert "Calibrated on: 8 images, the bundle&#39;s calibration pack" in page
    assert f"Checked on: {n} images, the bundle&#39;s self-test sample" in page
    assert page.count("<figure><img alt='' src='data:image/png;base64,i") >= 1  # crop thumbnails
    assert load_bundle(root).find("tflite", "int8").status == "ok"


class MovesNeutrophils:
    """An INT8 stand-in that answers EOSINOPHIL wherever the real artifact says NEUTROPHIL."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.runtime.close()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        probs = np.array(self.runtime.predict(batch))
        moved = probs.argmax(1) == 3
        probs[moved] = probs[moved][:, [3, 1, 2, 0]]
        return probs


def test_an_int8_that_moves_one_class_fails_the_per_class_gate(
    packed: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from wbc_edge.convert import parity

    real = parity.open_runtime
    monkeypatch.setattr(parity, "open_runtime", lambda *a, **k: MovesNeutrophils(real(*a, **k)))
    root = without_data(packed, tmp_path / "alone")
    loose_but_per_class = ["--min-agreement", "0", "--max-drop", "1"]
    assert main([str(root), "--artifacts", "tflite-int8", *loose_but_per_class]) == 1
    report = json.loads((root / "parity.json").read_text())
    (art,) = report["artifacts"]
    moved = sum(p == 3 for p in report["float_predictions"])
    assert moved and art["class_flips"][0] == {"from": "NEUTROPHIL", "to": "EOSINOPHIL", "n": moved}
    assert [r.split(" recall fell")[0] for r in art["reasons"]] == ["NEUTROPHIL"]
    md = (root / "parity.md").read_text()
    assert f"{moved} NEUTROPHIL → EOSINOPHIL" in md and "worst class NEUTROPHIL" in md
    assert "<details open>" in (root / "parity.html").read_text()  # failing: matrices shown
    assert load_bundle(root).find("tflite", "int8").status == "failed"


def test_without_data_or_pack_the_error_names_both_ways_out(
    float_bundle: Path, tmp_path: Path, capsys
) -> None:
    root = without_data(float_bundle, tmp_path / "bare")
    assert main([str(root), "--int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbc-convert: not-here/TRAIN: ") and "\n" not in err
    assert "--data-root" in err and "--calibration-pack-only" in err
    assert "self-test sample and calibration pack" in err
