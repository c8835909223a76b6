"""TFLite backend: fp32, fp16, dynamic-range and full-INT8 `.tflite` from the SavedModel.

Keras 3 models are exported to a SavedModel first (`convert.source`) and converted from it.
Dynamic-range and INT8 models keep per-tensor quantization for dense layers by default, so
that tflite-runtime 2.14 (32-bit Raspberry Pi OS) still loads them; the option
`tflite.dense_per_channel=true` quantizes them per channel (more accurate, newer runtimes).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from convert.formats import Job
from convert.source import ConvertContext

log = logging.getLogger(__name__)


def convert(job: Job, ctx: ConvertContext) -> dict[str, Any]:
    """Write `ctx.out_dir / job.file`; return the options to record with the artifact."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(ctx.source.saved_model))
    info: dict[str, Any] = {}
    if job.precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif job.precision in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        per_tensor = not job.options.get("dense_per_channel", False)
        converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor
    if job.precision == "int8":
        images = ctx.calibration.images
        converter.representative_dataset = lambda: ([images[i : i + 1]] for i in range(len(images)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"int8": tf.int8, "uint8": tf.uint8}[job.options["io_dtype"]]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
        info["calibration_images"] = len(images)
    (ctx.out_dir / job.file).write_bytes(converter.convert())
    if job.precision == "int8":
        info.update(_io_quantization(ctx.out_dir / job.file))
    return {**job.options, **info}


def _io_quantization(path) -> dict[str, Any]:
    """The input/output (scale, zero_point) of an INT8 model, for the record."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return {
        "input_quant": _quant(inp),
        "output_quant": _quant(out),
    }


def _quant(detail: dict) -> dict[str, Any]:
    scale, zero = detail["quantization"]
    return {
        "scale": float(scale),
        "zero_point": int(zero),
        "dtype": np.dtype(detail["dtype"]).name,
    }
