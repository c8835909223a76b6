"""Issue 28: checks that used to say yes say no, and hostile files are one line, never a
traceback: verify fails on an artifact that cannot load; a report records the scale each frame
was analysed at; JSON is size- and depth-limited; class names, preprocessing and profile numbers
are checked against their ranges; artifacts are regular files inside the bundle; a schema-2
artifact must carry its contract fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from repo_paths import REPO
from report_meta import report_meta

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.field import TRAINING_IMAGE, training_window
from wbc_edge.core.runtime import runtime_available
from wbc_edge.edge_app.classify import CellResult, FrameResult
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.profile import CameraProfile, ProfileError, load_profile, save_profile
from wbc_edge.edge_app.report import RunReport
from wbc_edge.edge_app.sources.files import MediaFrame
from wbc_edge.edge_app.summary import DifferentialCount

ROOT = REPO
FRAMES = ROOT / "samples" / "frames"
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
DEEP = "[" * 100_000 + "]" * 100_000

pytestmark = pytest.mark.edge


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit(root: Path, change, restamp: bool = False) -> None:
    """Change bundle.json; with `restamp`, record the new contract fingerprint everywhere, as
    someone forging a bundle would."""
    path = root / "bundle.json"
    data = json.loads(path.read_text())
    change(data)
    if restamp:
        what = {k: data[k] for k in ("classes", "input", "preprocessing")}
        text = json.dumps(what, sort_keys=True, separators=(",", ":"), allow_nan=False)
        stamp = hashlib.sha256(text.encode()).hexdigest()
        for a in data["artifacts"]:
            a["contract_sha256"] = stamp
        data["selftest"]["contract_sha256"] = stamp
    path.write_text(json.dumps(data))


def one_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbc-edge: ") and "Traceback" not in err
    return err


@pytest.mark.skipif(not runtime_available("litert"), reason="LiteRT not installed")
def test_verify_fails_when_an_artifact_cannot_load(edge_bundle, tmp_path, capsys) -> None:
    root = copy(edge_bundle, tmp_path / "b")
    model = root / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:4096])  # cut short, hash re-recorded below

    def rehash(d: dict) -> None:
        art = next(a for a in d["artifacts"] if a["file"] == "model_int8.tflite")
        art["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
        art["size_bytes"] = 4096

    edit(root, rehash)
    assert main(["verify", "--model", str(root)]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tflite-int8"))
    assert "cannot load" in row and row.rstrip().endswith("FAIL")
    assert out.splitlines()[-1].startswith("FAIL: ")


def test_a_missing_contract_fingerprint_is_refused(edge_bundle, tmp_path, capsys) -> None:
    root = copy(edge_bundle, tmp_path / "b")
    edit(root, lambda d: d["artifacts"][0].update(contract_sha256=None))
    err = one_line(capsys, ["verify", "--model", str(root)])
    assert "artifacts[0].contract_sha256: missing for model_fp32.tflite" in err


def test_an_artifact_linked_out_of_the_bundle_is_refused(edge_bundle, tmp_path) -> None:
    root = copy(edge_bundle, tmp_path / "b")
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(root / "model_fp32.onnx", outside)
    (root / "model_fp32.onnx").symlink_to(outside)  # same bytes, same hash: still refused
    with pytest.raises(BundleError, match=r"model_fp32\.onnx lies outside the bundle folder"):
        load_bundle(root)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["classes"].__setitem__(0, "../../../../tmp/x"), "is not a usable class name"),
        (lambda d: d["classes"].__setitem__(0, "=HYPERLINK(1)"), "is not a usable class name"),
        (lambda d: d["preprocessing"]["crop"].update(size=30000), "crop.size: 30000 is outside"),
        (
            lambda d: d["preprocessing"]["nucleus"].update(close_radius=1_000_000),
            "nucleus.close_radius: 1e+06 is outside",
        ),
    ],
)
def test_hostile_bundle_numbers_and_names(edge_bundle, tmp_path, capsys, change, says) -> None:
    root = copy(edge_bundle, tmp_path / "b")
    edit(root, change, restamp=True)
    err = one_line(capsys, ["verify", "--model", str(root)])
    assert says in err and str(root / "bundle.json") in err


def test_json_too_deep_or_not_a_file_is_one_line(edge_bundle, tmp_path, capsys) -> None:
    root = copy(edge_bundle, tmp_path / "b")
    (root / "bundle.json").write_text(DEEP)
    err = one_line(capsys, ["verify", "--model", str(root)])
    assert "JSON nested 100000 deep, over the limit of 64" in err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1000 + "]" * 1000)  # within a profile's 64 KB, too deep
    with pytest.raises(ProfileError, match="nested 1000 deep"):
        load_profile(deep)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(ProfileError, match=r"not a regular file"):
        load_profile(zero)
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.json").write_text(DEEP)
    err = one_line(capsys, ["review", str(report), "--no-browser", "--port", "0"])
    assert "report.json: JSON nested 100000 deep" in err


def profile(**change) -> CameraProfile:
    base = CameraProfile(2.0, (230.0, 220.0, 225.0), (200.0, 120.0, 130.0), 300.0, 3, (640, 480))
    return dataclasses.replace(base, **change)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"focus": 1e308}, r"focus: 1e\+308 is over"),
        ({"frames": 10**9}, "frames: 1000000000 is not from 1 to 1000"),
        ({"frame_size": (10**6, 10**6)}, "is larger than any camera frame"),
    ],
)
def test_profile_numbers_out_of_range(tmp_path, change, says) -> None:
    path = tmp_path / "p.json"
    save_profile(profile(**change), path)
    with pytest.raises(ProfileError, match=says):
        load_profile(path)


def test_max_pixels_inf_is_one_line(edge_bundle, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WBC_MAX_PIXELS", "inf")
    argv = ["classify", "--model", str(edge_bundle), "--source", str(FRAMES)]
    err = one_line(capsys, argv)
    assert "WBC_MAX_PIXELS='inf' is not a positive number of pixels (at most 1,000,000,000)" in err


def test_the_report_records_the_scale_each_frame_was_analysed_at(tmp_path) -> None:
    rgb = cv2.imread(str(FRAMES / "BloodImage_00000.jpg"))[:, :, ::-1].copy()
    spec = load_bundle(ROOT / "models" / "default").preprocessing
    meta = report_meta(spec, CLASSES)
    report = RunReport(tmp_path, meta, CLASSES)
    cell = CellResult((200, 150, 300, 250), "MONOCYTE", 0.9, dict.fromkeys(CLASSES, 0.25), False)
    centre = (250.0, 200.0)
    result = FrameResult([cell], scale=1.4, crops=[rgb[:32, :32]], centres=[centre])
    report(MediaFrame("one.jpg", 0, rgb), result)
    count = DifferentialCount(CLASSES, 0.6)
    count.add_frame([("MONOCYTE", 0.9)])
    html = report.write(count).read_text()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["meta"]["scale"] == 1.4 and data["meta"]["scales"] == {"1.4": 1}
    assert data["cells"][0]["scale"] == 1.4 and "scale 1.4 camera px" in html
    want = cv2.resize(
        training_window(rgb, *centre, 1.4), TRAINING_IMAGE, interpolation=cv2.INTER_AREA
    )
    got = cv2.imread(str(tmp_path / data["cells"][0]["context"]))[:, :, ::-1]
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3  # cut at 1.4 (JPEG aside)
    wrong = cv2.resize(
        training_window(rgb, *centre, 2.0), TRAINING_IMAGE, interpolation=cv2.INTER_AREA
    )
    assert np.abs(got.astype(int) - wrong.astype(int)).mean() > 3


def test_a_live_report_keeps_a_bounded_gallery(tmp_path) -> None:
    spec = load_bundle(ROOT / "models" / "default").preprocessing
    meta = report_meta(spec, CLASSES, source="camera")
    report = RunReport(tmp_path, meta, CLASSES, max_cells=5)
    crop = np.zeros((96, 96, 3), np.uint8)
    count = DifferentialCount(CLASSES, 0.6)
    for i in range(40):
        label = CLASSES[i % 4]
        cell = CellResult(None, label, 0.5, dict.fromkeys(CLASSES, 0.25), True)
        report.add_cell("camera", i, cell, crop, None, 2.0)
        count.add_cell(label, 0.5)
    report.write(count)
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["cells"]) == 5 and len(list((tmp_path / "cells").iterdir())) == 5
    assert data["count"]["cells"] == 40 and data["count"]["uncertain"] == 40
    assert any("the gallery shows the first 5 of 40 counted cells" in n for n in data["notes"])


def test_wbc_error_paths_are_kept_apart() -> None:
    err = WbcError("not valid JSON", "x.json")
    assert err.message == "not valid JSON" and str(err) == "x.json: not valid JSON"
