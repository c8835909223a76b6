"""core.runtime: one interface over LiteRT, ONNX Runtime and OpenVINO, on the tiny bundle."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import CLASSES, render_cell

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.preprocess import preprocess
from wbc_edge.core.runtime import (
    choose_artifact,
    open_runtime,
    runtime_available,
)
from wbc_edge.core.vocab import RUNTIMES

pytestmark = pytest.mark.edge

RUNNABLE = ("tflite", "onnx", "openvino")


@pytest.fixture(scope="module")
def bundle(edge_bundle: Path):
    return load_bundle(edge_bundle)


@pytest.fixture(scope="module")
def batch(bundle) -> np.ndarray:
    rng = np.random.default_rng(3)
    cells = [render_cell(CLASSES[i % 4], rng, size=(160, 120))[0] for i in range(6)]
    return np.stack([preprocess(c, bundle.preprocessing) for c in cells])


@pytest.fixture(scope="module")
def reference(bundle, batch) -> np.ndarray:
    """Probabilities of the fp32 TFLite model: every fp32 backend must give the same."""
    return open_runtime(bundle, bundle.find("tflite", "fp32")).predict(batch)


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_every_artifact_predicts_probabilities(bundle, batch, reference) -> None:
    arts = [a for a in bundle.artifacts if a.format in RUNNABLE]
    assert {a.format for a in arts} == set(RUNNABLE)
    for art in arts:
        rt = open_runtime(bundle, art, threads=1)
        probs = rt.predict(batch)
        assert probs.dtype == np.float32 and probs.shape == (len(batch), len(bundle.classes))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
        assert rt.artifact is art and rt.name in RUNTIMES
        tol = 1e-4 if art.precision == "fp32" else 0.15
        np.testing.assert_allclose(probs, reference, atol=tol, err_msg=f"{art.file}")
        # one row at a time gives the same as the whole batch (fixed or dynamic batch)
        np.testing.assert_allclose(rt.predict(batch[:1]), probs[:1], atol=1e-5)
        assert rt.predict(batch[:0]).shape == (0, len(bundle.classes))


def test_int8_tflite_quantizes_its_input_itself(bundle, batch, reference) -> None:
    rt = open_runtime(bundle, bundle.find("tflite", "int8"))
    assert rt.name == "litert" and rt.input_precision in ("int8", "uint8")
    assert rt.input_info.quant is not None  # int8 in, float probabilities out (float_layers)
    assert rt.output_info.dtype == "float32" and rt.output_info.quant is None
    probs = rt.predict(batch)  # float32 in, float32 probabilities out
    assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.8


def test_openvino_reports_the_precision_it_ran(bundle) -> None:
    rt = open_runtime(bundle, bundle.find("openvino", "fp32"))
    assert rt.inference_precision == "f32"  # compiled with INFERENCE_PRECISION_HINT f32
    assert "openvino" in rt.describe() and "f32" in rt.describe()
    if platform.machine() == "x86_64":  # never bf16 by default, AVX512-FP16 CPUs included
        for precision in ("fp16", "int8"):
            if (art := bundle.find("openvino", precision)) is not None:
                assert open_runtime(bundle, art).inference_precision == "f32", precision


def test_auto_prefers_int8_then_fp16_then_fp32(bundle, tmp_path) -> None:
    art, name = choose_artifact(bundle)
    assert art.precision == "int8" and name == "litert"
    assert choose_artifact(bundle, precision="fp32")[0].precision == "fp32"
    assert choose_artifact(bundle, runtime="onnxruntime")[0].format == "onnx"
    art, name = choose_artifact(bundle, runtime="openvino")
    assert (art.format, art.precision, name) == ("openvino", "int8", "openvino")
    # failed artifacts are never chosen
    b = load_bundle(copy_bundle(bundle.root, tmp_path / "b"))
    for a in b.artifacts:
        if a.precision == "int8":
            a.status = "failed"
    assert choose_artifact(b)[0].precision == "fp16"
    rt = open_runtime(b, runtime="auto")
    assert rt.precision == "fp16"


def test_tflite_runtime_refuses_a_process_with_tensorflow(bundle, monkeypatch) -> None:
    import types

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    assert not runtime_available("tflite-runtime")
    with pytest.raises(WbcError, match="tflite-runtime cannot share a process with TensorFlow"):
        open_runtime(bundle, runtime="tflite-runtime")


def test_missing_runtime_package_says_what_to_install(bundle, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    assert not runtime_available("openvino")
    with pytest.raises(WbcError) as err:
        open_runtime(bundle, runtime="openvino")
    msg = str(err.value)
    assert "\n" not in msg and "openvino" in msg and "pip install" in msg
    with pytest.raises(WbcError, match="pip install"):
        open_runtime(bundle, bundle.find("openvino", "fp32"))
    # auto quietly uses what is installed
    assert open_runtime(bundle, precision="fp32").name in ("litert", "onnxruntime")


def edit_bundle_json(root: Path, change) -> None:
    data = json.loads((root / "bundle.json").read_text())
    change(data)
    (root / "bundle.json").write_text(json.dumps(data))


def as_schema_1(d: dict) -> None:
    """No fingerprints, as a bundle from before schema 2: only the runtime's checks remain."""
    d["schema_version"] = 1  # from schema 2 on a fingerprint is required
    for a in d["artifacts"]:
        a["contract_sha256"] = None
    d.pop("selftest", None)


def test_class_count_mismatch_is_a_bundle_error(bundle, tmp_path) -> None:
    root = copy_bundle(bundle.root, tmp_path / "b")
    edit_bundle_json(root, lambda d: (as_schema_1(d), d.update(classes=d["classes"][:3])))
    b = load_bundle(root)
    for fmt in RUNNABLE:
        with pytest.raises(BundleError) as err:
            open_runtime(b, b.find(fmt, "fp32"))
        msg = str(err.value)
        assert msg.startswith(str(root / "bundle.json")) and "\n" not in msg
        assert "3 names" in msg and "outputs 4" in msg


def test_input_size_mismatch_is_a_bundle_error(bundle, tmp_path) -> None:
    root = copy_bundle(bundle.root, tmp_path / "b")
    spec = dataclasses.replace(bundle.preprocessing, height=40, width=40)
    edit_bundle_json(root, as_schema_1)
    b = load_bundle(root)
    b.preprocessing = spec
    save_bundle(b)
    b = load_bundle(root)
    for fmt in RUNNABLE:
        with pytest.raises(
            BundleError, match=r"takes input 32x32x3 but the bundle's input is 40x40x3"
        ):
            open_runtime(b, b.find(fmt, "fp32"))


def test_no_runnable_artifact(bundle, tmp_path) -> None:
    root = copy_bundle(bundle.root, tmp_path / "b")
    b = load_bundle(root)
    b.artifacts = [a for a in b.artifacts if a.format == "keras"]
    with pytest.raises(BundleError, match=r"no artifact to run.*wbc-convert"):
        open_runtime(b)
    with pytest.raises(WbcError, match="unknown runtime"):
        open_runtime(bundle, runtime="tensorflow")
    keras = dataclasses.replace(bundle.artifacts[0], format="keras", file="model.keras")
    with pytest.raises(WbcError, match="cannot run on the device"):
        open_runtime(bundle, keras)


def test_predict_checks_the_batch_shape(bundle) -> None:
    rt = open_runtime(bundle, bundle.find("onnx"))
    with pytest.raises(WbcError, match=r"predict\(\) takes a batch"):
        rt.predict(np.zeros((2, 16, 16, 3), np.float32))


def test_every_artifact_declares_the_float_models_output_kind(bundle) -> None:
    assert {a.output_kind for a in bundle.artifacts} == {"probabilities"}  # tiny CNN: softmax
    rt = open_runtime(bundle, bundle.find("tflite", "fp32"))
    assert rt.output_kind == "probabilities"


def test_jetson_gpu_providers_come_first_and_onnx_is_preferred(bundle, monkeypatch, tmp_path):
    """With TensorRT/CUDA providers (onnxruntime-gpu on a Jetson), auto picks the ONNX artifact
    and asks for TensorRT (engine cache on), then CUDA, then the CPU."""
    import onnxruntime as ort

    real_session = ort.InferenceSession
    seen: list = []

    def fake_session(path, opts, providers):
        seen.append(providers)
        return real_session(path, opts, providers=["CPUExecutionProvider"])

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: gpu)
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    art, name = choose_artifact(bundle)
    assert (art.format, name) == ("onnx", "onnxruntime")  # the GPU beats an int8 CPU model
    rt = open_runtime(bundle)
    (providers,) = seen
    trt, options = providers[0]
    assert trt == "TensorrtExecutionProvider" and options["trt_engine_cache_enable"]
    assert Path(options["trt_engine_cache_path"]).is_relative_to(tmp_path)
    assert providers[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert rt.device == "CPU"  # what the session really got (the fake falls back to the CPU)


def test_one_openvino_core_and_a_failed_compile_names_its_reason(bundle, monkeypatch) -> None:
    from wbc_edge.core import runtime

    art = bundle.find("openvino", "fp32")
    first, second = open_runtime(bundle, art), open_runtime(bundle, art)
    assert runtime._ov_core() is runtime._ov_core()  # one Core for the process
    first.close()
    second.close()
    core = runtime._ov_core()

    class FailingCore:  # what OpenVINO raises: frames first, the reason last
        def __getattr__(self, name):
            return getattr(core, name)

        def compile_model(self, *args, **kwargs):
            raise RuntimeError(
                "Exception from src/inference/src/cpp/core.cpp:117:\n"
                "Exception from src/inference/src/dev/plugin.cpp:54:\n"
                "[CPU] cannot allocate the executor's threads\n"
            )

    monkeypatch.setattr(runtime, "_ov_core", FailingCore)
    with pytest.raises(BundleError) as err:
        open_runtime(bundle, art)
    message = str(err.value)
    assert "openvino cannot compile it ([CPU] cannot allocate the executor's threads)" in message
    assert "core.cpp" not in message and "\n" not in message
