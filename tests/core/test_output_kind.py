"""Declared output kinds applied row by row, an undeclared one decided once at load, and
`auto` ranking an artifact that passed parity above an unchecked one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wbc_edge.core.bundle import Bundle, new_bundle
from wbc_edge.core.output_kind import apply_output_kind, infer_output_kind
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.runtime import Runtime, TensorInfo, choose_artifact, runtime_available

pytestmark = pytest.mark.edge

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
SPEC = PreprocessSpec(height=16, width=16)
PROBS = np.array([0.7, 0.1, 0.1, 0.1], np.float32)
LOGITS = np.array([3.0, 1.0, 0.0, -1.0], np.float32)


class FakeRuntime(Runtime):
    """A model whose rows are PROBS, or LOGITS where the input's first pixel is bright."""

    name = "fake"
    runs = 0

    def _load(self) -> None:
        self.input_info = TensorInfo((None, 16, 16, 3), "float32")
        self.output_info = TensorInfo((None, 4), "float32")

    def _run(self, x: np.ndarray) -> np.ndarray:
        FakeRuntime.runs += 1
        bright = x[:, 0, 0, 0] > 0.5
        return np.where(bright[:, None], LOGITS, PROBS)


def bundle_with(tmp_path: Path, kind, file: str = "m.onnx") -> Bundle:
    bundle = new_bundle(tmp_path / "b", "fake", CLASSES, SPEC)
    bundle.root.mkdir(exist_ok=True)
    (bundle.root / file).write_bytes(file.encode())
    bundle.add_artifact("onnx", "fp32", file, output_kind=kind)
    return bundle


def batch(*bright: bool) -> np.ndarray:
    x = np.zeros((len(bright), 16, 16, 3), np.float32)
    x[:, 0, 0, 0] = bright
    return x


@pytest.mark.parametrize("kind", ["probabilities", "logits"])
def test_a_cells_confidence_does_not_depend_on_its_neighbours(tmp_path, kind):
    bundle = bundle_with(tmp_path, kind)
    rt = FakeRuntime(bundle, bundle.artifacts[0], None)
    assert rt.output_kind_note is None
    alone = rt.predict(batch(False))
    beside_logits = rt.predict(batch(False, True))
    np.testing.assert_array_equal(alone[0], beside_logits[0])
    want = PROBS if kind == "probabilities" else apply_output_kind(PROBS[None], "logits")[0]
    np.testing.assert_allclose(alone[0], want, rtol=1e-6)


def test_logits_are_softmaxed_per_row():
    out = apply_output_kind(np.stack([LOGITS, np.zeros(4, np.float32)]), "logits")
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert out[0].argmax() == 0 and np.allclose(out[1], 0.25)
    with pytest.raises(ValueError, match="unknown output kind"):
        apply_output_kind(out, "scores")


def test_inference_of_a_kind_needs_every_row_to_be_a_distribution():
    assert infer_output_kind(np.stack([PROBS, PROBS])) == "probabilities"
    # an int8 softmax sums to 1 only within a few quantization steps: still probabilities
    assert infer_output_kind(np.array([[0.25390625, 0.2421875, 0.2421875, 0.25]])) == (
        "probabilities"
    )
    assert infer_output_kind(np.stack([PROBS, LOGITS])) == "logits"


def test_an_undeclared_kind_is_decided_once_at_load_and_said(tmp_path):
    bundle = bundle_with(tmp_path, None)
    FakeRuntime.runs = 0
    rt = FakeRuntime(bundle, bundle.artifacts[0], None)
    assert FakeRuntime.runs == 1  # the probe, at load
    assert rt.output_kind_note.startswith("m.onnx declares no output kind")  # what is logged
    assert rt.output_kind == "logits"  # the probe's random pixels include bright ones
    rt.predict(batch(False))
    rt.predict(batch(False, True))
    assert FakeRuntime.runs == 3 and rt.output_kind == "logits"  # never re-decided per batch


@pytest.mark.skipif(not runtime_available("litert"), reason="needs ai-edge-litert")
def test_auto_ranks_an_artifact_that_passed_above_an_unchecked_int8(tmp_path):
    bundle = new_bundle(tmp_path / "b", "fake", CLASSES, SPEC)
    bundle.root.mkdir()
    for precision in ("int8", "fp32", "fp16"):
        (bundle.root / f"m_{precision}.tflite").write_bytes(precision.encode())
        bundle.add_artifact("tflite", precision, f"m_{precision}.tflite")
    status = {"int8": "unchecked", "fp32": "ok", "fp16": "failed"}
    for art in bundle.artifacts:
        art.status = status[art.precision]
    assert choose_artifact(bundle)[0].precision == "fp32"
    bundle.artifacts[0].status = "ok"
    assert choose_artifact(bundle)[0].precision == "int8"  # both passed: precision decides
