"""`wbc-convert` end to end on the tiny trained bundle: artifacts, parity, reports, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_bundle import build_tiny_bundle

from wbc_edge.convert.cli import main
from wbc_edge.convert.formats import FORMATS
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.runtime import open_runtime


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"))


@pytest.fixture(scope="session")
def float_bundle(converted: Path) -> Path:
    return build_tiny_bundle(converted.parent, convert=False)


@pytest.fixture()
def float_copy(float_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(float_bundle, dst)
    return dst


def test_every_format_and_precision_is_converted_and_checked(converted: Path):
    bundle = load_bundle(converted)  # verifies every file's sha256
    have = {(a.format, a.precision): a for a in bundle.artifacts}
    for row in FORMATS:
        for precision in row.precisions:
            art = have[row.name, precision]
            assert art.file.endswith(row.suffix) and art.status == "ok", art
    for fmt in ("tflite", "onnx", "openvino"):
        assert bundle.parity["artifacts"][f"{fmt}-fp32"]["agreement"] == 1.0
    assert have["onnx", "fp32"].options["opset"] == 17
    assert have["tflite", "int8"].options["io_dtype"] == "int8"
    assert have["openvino", "fp32"].options["inference_precision"] == "f32"
    ov = bundle.parity["artifacts"]["openvino-fp32"]["runtime"]
    assert ov["backend"] == "openvino" and ov["inference_precision"] == "f32"  # read back
    for art in bundle.artifacts:  # no IR keeps the converter's temporary SavedModel path
        if art.format == "openvino":
            assert "conversion_parameters" not in (converted / art.file).read_text()


def test_int8_is_at_least_three_times_smaller_than_fp32(converted: Path):
    bundle = load_bundle(converted)
    fp32, int8 = bundle.find("tflite", "fp32"), bundle.find("tflite", "int8")
    assert fp32.size_bytes >= 3 * int8.size_bytes


def test_dense_layers_keep_per_tensor_weights_for_tflite_runtime_2_14(converted: Path):
    """Per-channel dense weights need FULLY_CONNECTED v12, which tflite-runtime 2.14 lacks."""
    from ai_edge_litert.interpreter import Interpreter

    for name in ("model_dynamic.tflite", "model_int8.tflite"):
        details = Interpreter(model_path=str(converted / name)).get_tensor_details()
        dense = [d for d in details if len(d["shape"]) == 2 and d["dtype"] == np.int8]
        assert dense, name
        assert all(len(d["quantization_parameters"]["scales"]) == 1 for d in dense), name


def test_int8_keeps_the_first_and_last_layers_in_float(converted: Path):
    """Default tflite.float_layers=first,last: the first convolution, the last dense layer and
    the softmax run in float, the rest in int8; input int8, output float32 probabilities."""
    from ai_edge_litert.interpreter import Interpreter

    art = load_bundle(converted).find("tflite", "int8")
    assert art.options["float_layers"] == "first,last"
    assert art.options["input_quant"]["dtype"] == "int8"
    assert art.options["output_quant"]["dtype"] == "float32"
    interp = Interpreter(model_path=str(converted / "model_int8.tflite"))
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops: dict[str, list] = {}
    for op in interp._get_ops_details():
        ops.setdefault(op["op_name"], []).append(dtypes[op["outputs"][0]])
    assert ops["CONV_2D"] == [np.float32, np.int8]  # tiny-cnn: two convolutions
    assert ops["FULLY_CONNECTED"] == [np.int8, np.float32]  # and two dense layers
    assert ops["SOFTMAX"] == [np.float32]
    assert len(art.options["float_nodes"]) == 2


def test_float_layers_none_is_plain_full_int8(float_copy: Path):
    argv = [str(float_copy), "--artifacts", "tflite-int8", "--option", "tflite.float_layers=none"]
    main([*argv, "--calib-images", "8", "--min-agreement", "0"])
    bundle = load_bundle(float_copy)
    art = bundle.find("tflite", "int8")
    assert art.options["float_layers"] == "none" and "float_nodes" not in art.options
    assert art.options["output_quant"]["dtype"] == "int8"
    rt = open_runtime(bundle, art)  # int8 out: the runtime dequantizes it
    assert rt.output_info.quant is not None
    probs = rt.predict(np.zeros((2, *rt.input_info.shape[1:]), np.float32))
    assert probs.shape == (2, len(bundle.classes)) and np.allclose(probs.sum(1), 1, atol=0.02)


def test_parity_json_is_self_consistent(converted: Path):
    report = json.loads((converted / "parity.json").read_text())
    labels = np.array(report["parity_set"]["labels"])
    n = report["parity_set"]["n"]
    float_pred = np.array(report["float_predictions"])
    assert len(labels) == len(float_pred) == len(report["parity_set"]["files"]) == n > 0
    for art in report["artifacts"]:
        pred = np.array(art["predictions"])
        assert art["agreement"] == pytest.approx(np.mean(pred == float_pred))
        assert art["accuracy_artifact"] == pytest.approx(np.mean(pred == labels))
        assert art["accuracy_float"] == pytest.approx(np.mean(float_pred == labels))
        assert art["drop_points"] == pytest.approx(
            100 * (art["accuracy_float"] - art["accuracy_artifact"])
        )
        for scores in (art["float_scores"], art["artifact_scores"]):
            assert np.sum(scores["confusion"]) == n
        assert len(art["flipped"]) == int(np.sum(pred != float_pred))
        assert sum(f["n"] for f in art["class_flips"]) == len(art["flipped"])
        change = np.subtract(art["artifact_scores"]["recall"], art["float_scores"]["recall"])
        assert art["recall_change"] == pytest.approx(change, abs=1e-5)
        assert 0 <= art["mean_abs_prob_diff"] <= art["max_abs_prob_diff"] <= 1
    calib = report["calibration"]
    assert calib["n"] == len(calib["files"]) > 0
    manifest = (converted / "split.csv").read_text().splitlines()
    side = {line.split(",")[0]: line.split(",")[3] for line in manifest[1:]}
    assert {side[f] for f in calib["files"]} == {"train"}  # real training images, never noise
    assert {side[f] for f in report["parity_set"]["files"]} == {"val"}


def test_a_conversion_with_the_data_writes_the_calibration_pack(converted: Path):
    from wbc_edge.convert.calibration_pack import load_pack

    bundle = load_bundle(converted)
    calib = json.loads((converted / "parity.json").read_text())["calibration"]
    pack = load_pack(bundle)
    assert bundle.calibration_pack.n == len(pack.files) == min(24, calib["n"])
    assert pack.files == calib["files"][: len(pack.files)]  # the stratified prefix, train side
    assert bundle.selftest is not None


def test_reports_exist_and_html_is_self_contained(converted: Path):
    for name in ("parity.json", "parity.md", "parity.html", "parity.png"):
        assert (converted / name).stat().st_size > 0
    page = (converted / "parity.html").read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing fetched from outside
    md = (converted / "parity.md").read_text()
    assert "tflite-int8" in md and "openvino-int8" in md


class Disagreeing:
    """A runtime whose top class is always the float model's next one: every gate fails."""

    def __init__(self, runtime):
        self.runtime = runtime

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.runtime.close()

    def predict(self, batch):
        return np.roll(self.runtime.predict(batch), 1, axis=1)


@pytest.fixture()
def disagreeing(monkeypatch):
    from wbc_edge.convert import parity

    real = parity.open_runtime
    monkeypatch.setattr(parity, "open_runtime", lambda *a, **k: Disagreeing(real(*a, **k)))


def manifest_column(bundle_dir: Path, column: int) -> dict[str, str]:
    """path -> one column of the bundle's split.csv (2: group, 3: side)."""
    rows = [line.split(",") for line in (bundle_dir / "split.csv").read_text().split()[1:]]
    return {row[0]: row[column] for row in rows}


def train_side_copy(bundle_dir: Path, dst: Path) -> Path:
    """The bundle's training images only, as a class-folder tree."""
    bundle = load_bundle(bundle_dir)
    data = Path(bundle.provenance["data"])
    for line in (bundle_dir / "split.csv").read_text().splitlines()[1:]:
        path, _, _, side = line.split(",")
        if side == "train":
            (dst / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data / path, dst / path)
    return dst


def test_int8_cli_exit_follows_the_gate(float_copy: Path, capsys, tmp_path: Path, disagreeing):
    """--int8 converts TFLite + OpenVINO INT8; artifacts that disagree fail both."""
    calib_dir = train_side_copy(float_copy, tmp_path / "train-side")
    code = main([str(float_copy), "--int8", "--calib-data", str(calib_dir), "--calib-images", "8"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "tflite-int8" in out and "openvino-int8" in out
    bundle = load_bundle(float_copy)
    assert {(a.format, a.status) for a in bundle.artifacts if a.precision == "int8"} == {
        ("tflite", "failed"),
        ("openvino", "failed"),
    }
    report = json.loads((float_copy / "parity.json").read_text())
    assert "--calib-data" in report["calibration"]["source"]
    assert report["calibration"]["n"] == 8 and not report["passed"]
    assert all("agreement" in a["reasons"][0] for a in report["artifacts"])


def test_calibrating_on_every_image_leaves_no_held_out_cell(float_copy: Path, capsys):
    """--calib-data over the whole data tree calibrates on the held-out cells too: parity
    then refuses them rather than call them held-out."""
    data = load_bundle(float_copy).provenance["data"]
    argv = [str(float_copy), "--artifacts", "tflite-int8", "--calib-data", data]
    err = one_line_error(capsys, argv)
    assert "every one of its 12 images was seen in training or calibration" in err
    assert "12 calibration image" in err


def test_a_failing_gate_and_out_leave_the_source_alone(
    float_copy: Path, tmp_path: Path, monkeypatch
):
    out = tmp_path / "converted"
    before = (float_copy / "bundle.json").read_text()
    argv = [str(float_copy), "--formats", "tflite", "--precisions", "fp32", "--out", str(out)]
    with monkeypatch.context() as m:
        from wbc_edge.convert import parity

        real = parity.open_runtime
        m.setattr(parity, "open_runtime", lambda *a, **k: Disagreeing(real(*a, **k)))
        assert main([*argv, "--max-drop", "0"]) == 1
    assert (float_copy / "bundle.json").read_text() == before
    assert load_bundle(out).find("tflite", "fp32").status == "failed"
    assert main([str(out), *argv[1:5]]) == 0  # default gate, in place
    assert load_bundle(out).find("tflite", "fp32").status == "ok"


def test_artifacts_converts_exactly_the_pairs_named(float_copy: Path):
    assert main([str(float_copy), "--artifacts", "tflite-fp32,openvino-fp16"]) == 0
    bundle = load_bundle(float_copy)
    made = sorted(f"{a.format}-{a.precision}" for a in bundle.artifacts if a.format != "keras")
    assert made == ["openvino-fp16", "tflite-fp32"]
    assert sorted(bundle.parity["artifacts"]) == made


def test_parity_data_folder_drops_the_training_cells(float_copy: Path, capsys):
    """The issue's reproduction: --parity-data pointed at the training data itself."""
    data = Path(load_bundle(float_copy).provenance["data"])
    argv = [str(float_copy), "--artifacts", "onnx-fp32", "--parity-data", str(data)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((float_copy / "parity.json").read_text())
    ps = report["parity_set"]
    assert "--parity-data" in ps["source"] and report["calibration"] is None  # no INT8 asked
    assert ps["n"] == 12 and ps["selection"]["candidates"] == 24
    assert ps["selection"]["dropped"] == {"training image (same class and file name)": 12}
    assert {manifest_column(float_copy, 3)[f] for f in ps["files"]} == {"val"}
    assert "12 of 24 dropped" in out and "on 12 held-out images" in out
    md = (float_copy / "parity.md").read_text()
    assert "12 of 24 dropped as seen in training or calibration" in md
    assert load_bundle(float_copy).parity["parity_set"]["chosen"] == ps["chosen"]


def test_a_chance_level_float_model_is_flagged_and_recorded(float_copy: Path, capsys, monkeypatch):
    from wbc_edge.convert.source import SourceModel

    def one_class(self, batch, batch_size=64):  # NEUTROPHIL for every cell
        return np.tile(np.array([[0.0, 0.0, 0.0, 1.0]], np.float32), (len(batch), 1))

    monkeypatch.setattr(SourceModel, "predict", one_class)
    argv = [str(float_copy), "--artifacts", "onnx-fp32", "--min-agreement", "0", "--max-drop", "1"]
    assert main([*argv, "--max-class-drop", "1"]) == 0  # parity is relative: it cannot see this
    assert "WARNING: quality floor not met" in capsys.readouterr().out
    quality = load_bundle(float_copy).quality
    assert quality["passed"] is False and quality["accuracy"] == 0.25
    assert quality["worst_recall"] == 0.0 and "recall below" in quality["reason"]


def test_the_quality_record_matches_the_parity_report(converted: Path):
    quality = load_bundle(converted).quality
    report = json.loads((converted / "parity.json").read_text())
    labels = np.array(report["parity_set"]["labels"])
    accuracy = np.mean(np.array(report["float_predictions"]) == labels)
    assert quality["images"] == len(labels) and quality["accuracy"] == pytest.approx(accuracy)
    assert quality["passed"] == (
        quality["accuracy"] >= quality["min_accuracy"]
        and quality["worst_recall"] >= quality["min_recall"]
    )


def test_uint8_io_and_accuracy_controlled_openvino(float_copy: Path):
    code = main([str(float_copy), "--int8", "--io-dtype", "uint8", "--max-drop", "0.5",
                 "--min-agreement", "0.75", "--calib-images", "8"])  # fmt: skip
    assert code == 0
    bundle = load_bundle(float_copy)
    tfl, ov = bundle.find("tflite", "int8"), bundle.find("openvino", "int8")
    assert tfl.options["io_dtype"] == "uint8" and tfl.options["input_quant"]["dtype"] == "uint8"
    assert ov.options["quantization"] == "nncf.quantize_with_accuracy_control"
    assert ov.options["accuracy_control"]["max_drop"] == 0.5
    assert bundle.parity["thresholds"] == {"min_agreement": 0.75, "max_drop": 0.5}
    # NNCF tuned on held-out cells that the parity gate then never sees
    ps = json.loads((float_copy / "parity.json").read_text())["parity_set"]
    tuning = ps["selection"]["tuning"]
    assert ov.options["accuracy_control"]["validation_images"] == tuning["n"] == 6
    cell = manifest_column(float_copy, 2)
    assert ps["n"] == 6 and not {cell[f] for f in tuning["files"]} & {cell[f] for f in ps["files"]}
    assert "tuned NNCF's accuracy control" in ps["chosen"]


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("wbc-convert: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


def test_missing_bundle(capsys, tmp_path: Path):
    err = one_line_error(capsys, [str(tmp_path / "nope"), "--int8"])
    assert "bundle.json" in err


def test_classes_that_do_not_match_the_model(capsys, float_copy: Path):
    data = json.loads((float_copy / "bundle.json").read_text())
    data["classes"] = data["classes"][:3]
    (float_copy / "bundle.json").write_text(json.dumps(data))
    argv = [str(float_copy), "--formats", "onnx", "--precisions", "fp32"]
    err = one_line_error(capsys, argv)  # the fingerprint the Keras artifact was stamped with
    assert "artifacts[0].contract_sha256: model.keras was made and checked for other" in err
    data["schema_version"] = 1  # an old bundle, no fingerprint: the model itself says so
    data["artifacts"][0]["contract_sha256"] = None
    (float_copy / "bundle.json").write_text(json.dumps(data))
    err = one_line_error(capsys, argv)
    assert "classes has 3 names but the model outputs 4" in err


def test_calibration_folder_without_images(capsys, float_copy: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    (empty / "EOSINOPHIL").mkdir(parents=True)
    err = one_line_error(capsys, [str(float_copy), "--int8", "--calib-data", str(empty)])
    assert str(empty) in err and "no images" in err


def test_unwritable_output_folder(capsys, float_copy: Path, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = one_line_error(capsys, [str(float_copy), "--int8", "--out", str(blocker / "out")])
    assert str(blocker / "out") in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--formats", "tflite,caffe"], "unknown format 'caffe'"),
        (["--precisions", "int4"], "unknown precision 'int4'"),
        (["--formats", "onnx", "--precisions", "int8"], "no requested format offers precision"),
        (
            ["--formats", "onnx", "--precisions", "fp32", "--option", "onnx.quality=9"],
            "onnx has no option 'quality'",
        ),
        (
            ["--formats", "onnx", "--precisions", "fp32", "--io-dtype", "uint8"],
            "options given for tflite",
        ),
        (["--int8", "--io-dtype", "int16"], "io_dtype=int16 is not one of int8, uint8"),
        (["--int8", "--option", "tflite.float_layers=middle"], "float_layers=middle is not one of"),
        (["--artifacts", "onnx-int8"], "unknown artifact 'onnx-int8'"),
        (["--artifacts", "tflite-fp32", "--int8"], "--artifacts names the artifacts itself"),
    ],
)
def test_unknown_format_precision_or_option(capsys, float_bundle: Path, args, message):
    before = (float_bundle / "bundle.json").read_text()
    err = one_line_error(capsys, [str(float_bundle), *args])
    assert message in err and str(float_bundle) in err
    assert (float_bundle / "bundle.json").read_text() == before  # checked before any work
