import dataclasses
import json
import os
from pathlib import Path

import pytest

from wbc_edge.core.bundle import load_bundle, new_bundle, save_bundle
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.preprocess_spec import CropSpec, NormSpec, PreprocessSpec

pytestmark = pytest.mark.edge

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]


def make(tmp_path: Path):
    spec = PreprocessSpec(
        height=64,
        width=48,
        color_order="BGR",
        crop=CropSpec("nucleus", 120),
        norm=NormSpec("mean_std", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)),
    )
    bundle = new_bundle(tmp_path / "b", "tiny", CLASSES, spec, seed=3, data="gen")
    bundle.root.mkdir()
    (bundle.root / "model.tflite").write_bytes(b"\x00" * 100)
    bundle.add_artifact("tflite", "int8", "model.tflite", io_dtype="int8")
    bundle.add_metrics("grouped-val", {"accuracy": 0.5})
    save_bundle(bundle)
    return bundle


def test_round_trip_keeps_everything(tmp_path):
    saved = make(tmp_path)
    loaded = load_bundle(saved.root)
    assert loaded.classes == CLASSES
    assert loaded.preprocessing == saved.preprocessing
    assert loaded.provenance["seed"] == 3 and "created" in loaded.provenance
    art = loaded.find("tflite", "int8")
    assert art is not None and art.size_bytes == 100 and art.options == {"io_dtype": "int8"}
    assert loaded.metrics == [{"split": "grouped-val", "values": {"accuracy": 0.5}}]
    data = json.loads(saved.path.read_text())
    assert data["input"] == {
        "height": 64,
        "width": 48,
        "channels": 3,
        "color_order": "BGR",
        "dtype": "float32",
    }
    assert "steps" not in data["preprocessing"]


def test_add_artifact_replaces_same_file(tmp_path):
    bundle = make(tmp_path)
    bundle.add_artifact("tflite", "int8", "model.tflite")
    assert len(bundle.artifacts) == 1


def edit(bundle, change) -> None:
    data = json.loads(bundle.path.read_text())
    change(data)
    bundle.path.write_text(json.dumps(data))


BAD_EDITS = {  # edit -> the one line it gives, after "bundle.json: "
    "schema_version 99 is not supported (this wbc-edge reads 1, 2)": lambda d: d.update(
        schema_version=99
    ),
    "classes: missing": lambda d: d.pop("classes"),
    "classes: names must be unique": lambda d: d.update(classes=["A", "A"]),
    "classes: must be a non-empty list of names": lambda d: d.update(classes=[]),
    "input.height: 65 does not match the preprocessing (64)": lambda d: d["input"].update(
        height=65
    ),
    "input.color_order: 'RGB' does not match the preprocessing ('BGR')": lambda d: d[
        "input"
    ].update(color_order="RGB"),
    "preprocessing.crop.method: expected one of 'nucleus', 'none', 'center', got 'magic'": (
        lambda d: d["preprocessing"]["crop"].update(method="magic")
    ),
    "preprocessing.norm.std: must be positive": lambda d: d["preprocessing"]["norm"].update(
        std=[1, 0, 1]
    ),
    "preprocessing.colour: expected an object, got 'x'": lambda d: d["preprocessing"].update(
        colour="x"
    ),
    "metrics[0].split: missing": lambda d: d["metrics"][0].pop("split"),
    "artifacts[0].format: expected one of 'keras', 'savedmodel', 'tflite', 'onnx', "
    "'openvino', got 'pickle'": lambda d: d["artifacts"][0].update(format="pickle"),
    "artifacts[0].precision: expected one of 'fp32', 'fp16', 'dynamic', 'int8', got 'int4'": (
        lambda d: d["artifacts"][0].update(precision="int4")
    ),
    "artifacts[0].file: '../x.tflite' must lie inside the bundle": lambda d: d["artifacts"][
        0
    ].update(file="../x.tflite"),
    "artifacts[0].colour: unknown field": lambda d: d["artifacts"][0].update(colour=1),
    "name: expected a string, got 5": lambda d: d.update(name=5),
    # the cases the review found: each was a TypeError, AttributeError or traceback
    "artifacts[0].file: expected a string, got 5": lambda d: d["artifacts"][0].update(file=5),
    "artifacts[0].options: expected an object, got a list": lambda d: d["artifacts"][0].update(
        options=[]
    ),
    "preprocessing.nucleus.min_area: expected an integer, got '250'": lambda d: d["preprocessing"][
        "nucleus"
    ].update(min_area="250"),
    "preprocessing.height: expected an integer, got 64.0": lambda d: d["preprocessing"].update(
        height=64.0
    ),
    "preprocessing.norm.scale: expected a finite number, got nan": lambda d: d["preprocessing"][
        "norm"
    ].update(scale=float("nan")),
    "provenance.seed: expected a finite number, got inf": lambda d: d["provenance"].update(
        seed=float("inf")
    ),
    "artifacts[0].size_bytes: expected an integer, got true": lambda d: d["artifacts"][0].update(
        size_bytes=True
    ),
    "artifacts[0].output_kind: expected one of 'probabilities', 'logits', got 'scores'": (
        lambda d: d["artifacts"][0].update(output_kind="scores")
    ),
    "artifacts[0].sha256: 'abc' is not a sha256 (64 hex digits)": lambda d: d["artifacts"][
        0
    ].update(sha256="abc"),
    "parity.thresholds.min_agreement: expected a number, got '0.99'": lambda d: d.update(
        parity={"thresholds": {"min_agreement": "0.99", "max_drop": 0.01}}
    ),
    "selftest.n: expected an integer, got '9'": lambda d: d.update(
        selftest={
            "file": "s.npz",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "n": "9",
            "source": "x",
            "contract_sha256": "0" * 64,
        }
    ),
    "calibration_pack.file: '../c.npz' must lie inside the bundle": lambda d: d.update(
        calibration_pack={
            "file": "../c.npz",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "n": 9,
            "source": "x",
            "contract_sha256": "0" * 64,
        }
    ),
}


def test_a_changed_calibration_pack_is_refused_at_load(tmp_path):
    from wbc_edge.core.bundle import CalibrationPack

    bundle = make(tmp_path)
    (bundle.root / "calibration.npz").write_bytes(b"crops")
    rec = bundle.file_hash("calibration.npz")
    bundle.calibration_pack = CalibrationPack(
        rec.file, rec.sha256, rec.size_bytes, 3, "train side", bundle.contract_sha256
    )
    save_bundle(bundle)
    assert load_bundle(bundle.root).calibration_pack == bundle.calibration_pack
    (bundle.root / "calibration.npz").write_bytes(b"CROPS")
    with pytest.raises(BundleError, match=r"calibration_pack: calibration\.npz does not match"):
        load_bundle(bundle.root)


@pytest.mark.parametrize("line", BAD_EDITS)
def test_each_bad_field_is_one_line_naming_it(tmp_path, line):
    bundle = make(tmp_path)
    edit(bundle, BAD_EDITS[line])
    with pytest.raises(BundleError) as err:
        load_bundle(bundle.root)
    assert str(err.value) == f"{bundle.path}: {line}"


def test_every_problem_is_listed_one_per_line(tmp_path, capsys):
    from wbc_edge.edge_app.cli import main

    bundle = make(tmp_path)

    def change(d):
        d["artifacts"][0].update(file=5, options=[])
        d["preprocessing"]["nucleus"]["min_area"] = "250"
        d["preprocessing"]["height"] = 96.0

    edit(bundle, change)
    assert main(["verify", "--model", str(bundle.root)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"wbc-edge: {bundle.path}: {p}"
        for p in (
            "preprocessing.height: expected an integer, got 96.0",
            "preprocessing.nucleus.min_area: expected an integer, got '250'",
            "artifacts[0].file: expected a string, got 5",
            "artifacts[0].options: expected an object, got a list",
        )
    ]


def test_the_open_parts_list_every_problem_naming_the_file(tmp_path):
    bundle = make(tmp_path)

    def change(d):
        d["provenance"]["adaptation"] = {"parent": {"name": 3}, "verdict": {"wins": "yes"}}
        d["parity"] = {"artifacts": {"tflite-int8": {"file": "model.tflite", "status": "good"}}}
        d["quality"] = {"passed": "no", "note": "kept"}
        d["metrics"][0]["values"] = [0.5]

    edit(bundle, change)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle.root)
    assert str(err.value).splitlines() == [
        f"{bundle.path}: {p}"
        for p in (
            "provenance.adaptation.parent.name: expected a string, got 3",
            "provenance.adaptation.verdict.wins: expected true or false, got 'yes'",
            "metrics[0].values: expected an object, got a list",
            "parity.artifacts.tflite-int8.status: expected one of 'ok', 'failed', 'unchecked', "
            "got 'good'",
            "quality.passed: expected true or false, got 'no'",
        )
    ]


def test_unknown_top_level_keys_are_kept_with_a_warning(tmp_path, caplog):
    bundle = make(tmp_path)
    edit(bundle, lambda d: d.update(future={"x": 1}, quality={"accuracy": 0.9, "ok": True}))
    loaded = load_bundle(bundle.root)
    assert "unknown top-level key 'future'" in caplog.text
    assert loaded.quality == {"accuracy": 0.9, "ok": True}
    save_bundle(loaded)
    data = json.loads(bundle.path.read_text())
    assert data["future"] == {"x": 1} and data["quality"]["ok"] is True


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(BundleError, match="no bundle here"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path)


def test_changed_or_missing_artifact_is_caught(tmp_path):
    bundle = make(tmp_path)
    (bundle.root / "model.tflite").write_bytes(b"\x01" * 100)
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        load_bundle(bundle.root)
    load_bundle(bundle.root, verify=False)
    (bundle.root / "model.tflite").unlink()
    with pytest.raises(BundleError, match=r"model\.tflite is missing"):
        load_bundle(bundle.root)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    bundle = make(tmp_path)
    save_bundle(bundle)
    assert sorted(p.name for p in bundle.root.iterdir()) == ["bundle.json", "model.tflite"]
    before = bundle.path.read_bytes()
    bundle.name = "renamed"

    def disk_full(fd: int) -> None:  # the write dies before its bytes are safe on disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(WbcError, match="No space left"):
        save_bundle(bundle)
    assert bundle.path.read_bytes() == before  # a write onto bundle.json itself would cut it
    assert sorted(p.name for p in bundle.root.iterdir()) == ["bundle.json", "model.tflite"]


def test_saved_bundle_is_readable_by_others(tmp_path):
    bundle = make(tmp_path)
    assert bundle.path.stat().st_mode & 0o777 == 0o644


def with_openvino(tmp_path: Path):
    bundle = make(tmp_path)
    (bundle.root / "model_int8.xml").write_bytes(b"<net/>")
    (bundle.root / "model_int8.bin").write_bytes(bytes(range(256)) * 4)
    bundle.add_artifact("openvino", "int8", "model_int8.xml", ["model_int8.bin"], "probabilities")
    save_bundle(bundle)
    return bundle


def test_every_file_of_an_artifact_is_hashed_and_checked(tmp_path):
    bundle = with_openvino(tmp_path)
    art = load_bundle(bundle.root).find("openvino")
    assert [f.file for f in art.files] == ["model_int8.xml", "model_int8.bin"]
    assert art.disk_bytes == 6 + 1024
    weights = bundle.root / "model_int8.bin"
    weights.write_bytes(bytes(reversed(weights.read_bytes())))  # same size, other bytes
    with pytest.raises(BundleError) as err:
        load_bundle(bundle.root)
    assert str(err.value) == (
        f"{bundle.path}: artifacts[1].extra_files[0]: model_int8.bin does not match its "
        "recorded sha256/size (changed after the bundle was written?)"
    )


def test_schema_1_weights_options_are_checked_after_migration(tmp_path):
    bundle = with_openvino(tmp_path)

    def to_v1(d):
        d["schema_version"] = 1
        for a in d["artifacts"]:
            for k in ("output_kind", "contract_sha256"):
                a.pop(k)
            if a.pop("extra_files"):
                a["options"] = {
                    "weights_file": "model_int8.bin",
                    "weights_sha256": "f" * 64,  # not the file's
                    "weights_size_bytes": 1024,
                }
            else:
                a.pop("extra_files", None)

    edit(bundle, to_v1)
    with pytest.raises(BundleError, match=r"extra_files\[0\]: model_int8.bin does not match"):
        load_bundle(bundle.root)
    old = load_bundle(bundle.root, verify=False)
    art = old.find("openvino")
    assert art.options == {} and art.output_kind is None and art.contract_sha256 is None


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(classes=[d["classes"][1], d["classes"][0], *d["classes"][2:]]),
        lambda d: d["preprocessing"]["crop"].update(size=121),
        lambda d: d["preprocessing"]["norm"].update(mean=[0.4, 0.5, 0.3]),
    ],
    ids=["class-order-swapped", "crop-size-edited", "norm-edited"],
)
def test_classes_or_preprocessing_changed_after_conversion_are_refused(tmp_path, change):
    bundle = with_openvino(tmp_path)
    edit(bundle, change)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle.root, verify=False)
    lines = str(err.value).splitlines()
    assert len(lines) == 2  # one per artifact
    assert lines[1].startswith(f"{bundle.path}: artifacts[1].contract_sha256: model_int8.xml was")


def test_the_fingerprint_ignores_how_numbers_are_spelled(tmp_path):
    bundle = with_openvino(tmp_path)
    edit(bundle, lambda d: d["preprocessing"]["nucleus"].update(stain_threshold=45))
    assert load_bundle(bundle.root).contract_sha256 == bundle.contract_sha256


def test_a_deliberate_preprocessing_change_restamps_and_unchecks(tmp_path):
    bundle = with_openvino(tmp_path)
    for art in bundle.artifacts:
        art.status = "ok"
    old = bundle.contract_sha256
    bundle.change_preprocessing(dataclasses.replace(bundle.preprocessing, interpolation="linear"))
    save_bundle(bundle)
    loaded = load_bundle(bundle.root)
    assert loaded.contract_sha256 != old
    assert {(a.status, a.contract_sha256) for a in loaded.artifacts} == {
        ("unchecked", loaded.contract_sha256)
    }
    assert loaded.parity == {} and loaded.selftest is None
