import json
from pathlib import Path

import pytest

from edge_app.bundle import load_bundle, new_bundle, save_bundle
from edge_app.errors import BundleError
from edge_app.preprocess_spec import CropSpec, NormSpec, PreprocessSpec

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


BAD_EDITS = {
    "schema_version": lambda d: d.update(schema_version=99),
    "classes: missing": lambda d: d.pop("classes"),
    "classes: names must be unique": lambda d: d.update(classes=["A", "A"]),
    "classes: must be a non-empty": lambda d: d.update(classes=[]),
    "input.height": lambda d: d["input"].update(height=65),
    "input.color_order": lambda d: d["input"].update(color_order="RGB"),
    "preprocessing: crop.method": lambda d: d["preprocessing"]["crop"].update(method="magic"),
    "preprocessing: norm.std": lambda d: d["preprocessing"]["norm"].update(std=[1, 0, 1]),
    "preprocessing: ": lambda d: d["preprocessing"].update(colour="x"),
    "metrics[0]": lambda d: d["metrics"][0].pop("split"),
    "artifacts[0].format": lambda d: d["artifacts"][0].update(format="pickle"),
    "artifacts[0].precision": lambda d: d["artifacts"][0].update(precision="int4"),
    "artifacts[0].file": lambda d: d["artifacts"][0].update(file="../x.tflite"),
    "artifacts[0]: ": lambda d: d["artifacts"][0].update(colour=1),
    "name: expected str": lambda d: d.update(name=5),
}


@pytest.mark.parametrize("field", BAD_EDITS)
def test_each_bad_field_is_named_in_one_line(tmp_path, field):
    bundle = make(tmp_path)
    edit(bundle, BAD_EDITS[field])
    with pytest.raises(BundleError) as err:
        load_bundle(bundle.root)
    message = str(err.value)
    assert message.startswith(str(bundle.path) + ": " + field)
    assert "\n" not in message


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


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    bundle = make(tmp_path)
    save_bundle(bundle)
    assert sorted(p.name for p in bundle.root.iterdir()) == ["bundle.json", "model.tflite"]


def test_saved_bundle_is_readable_by_others(tmp_path):
    bundle = make(tmp_path)
    assert bundle.path.stat().st_mode & 0o777 == 0o644
