"""TEMPORARY stand-in for edge_app.runtime.open_runtime until that lands. Delete then."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_app.bundle import Artifact, Bundle


class _Runtime:
    def __init__(self, bundle: Bundle, art: Artifact, threads: int | None) -> None:
        self.path = bundle.artifact_path(art)
        self.art = art
        self.threads = threads
        getattr(self, f"_open_{art.format}")()

    def _open_tflite(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(self.path), num_threads=self.threads)
        self.name, self.inference_precision = "litert", art_precision(self.art)

    def _open_onnx(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self.sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.name, self.inference_precision = "onnxruntime", "fp32"

    def _open_openvino(self) -> None:
        import openvino as ov

        cfg = {}
        if self.art.precision == "fp32":
            cfg["INFERENCE_PRECISION_HINT"] = "f32"
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", cfg)
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.name, self.inference_precision = "openvino", str(ran)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if self.art.format == "onnx":
            name = self.sess.get_inputs()[0].name
            return self.sess.run(None, {name: batch})[0]
        if self.art.format == "openvino":
            return np.asarray(self.compiled(batch)[0])
        return np.concatenate([self._tflite_one(x[None]) for x in batch])

    def _tflite_one(self, x: np.ndarray) -> np.ndarray:
        from edge_app.preprocess import QuantParams, quantize

        interp = self.interp
        if not hasattr(self, "_allocated"):
            interp.allocate_tensors()
            self._allocated = True
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        if np.dtype(inp["dtype"]) != np.float32:
            s, z = inp["quantization"]
            x = quantize(x, QuantParams(s, z, np.dtype(inp["dtype"]).name))
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if np.dtype(out["dtype"]) != np.float32:
            s, z = out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y


def art_precision(art: Artifact) -> str:
    return art.precision


def open_runtime(bundle: Bundle, artifact: Artifact, threads: int | None = None) -> _Runtime:
    return _Runtime(bundle, artifact, threads)


__all__ = ["Path", "open_runtime"]
