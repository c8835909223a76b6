"""TFLite backend: fp32, fp16, dynamic-range and full-INT8 `.tflite` from the SavedModel.

Keras 3 models are exported to a SavedModel first (`convert.source`) and converted from it.
Dynamic-range and INT8 models keep per-tensor quantization for dense layers by default, so
that tflite-runtime 2.14 (32-bit Raspberry Pi OS) still loads them; the option
`tflite.dense_per_channel=true` quantizes them per channel (more accurate, newer runtimes).

INT8 keeps two layers in float by default (`tflite.float_layers=first,last`): the first
layer, which sees the pixels, and the last (class scores and softmax). On the previous
default custom-cnn's 3,066 held-out cells, full INT8 changed the class of 2.8 % of them;
with the first convolution in float 0.4 %, with both layers 0.2 %, for +0.08 ms per cell.
The first layer's output channels span very different ranges that one per-tensor int8
scale serves badly; TensorFlow's `QuantizationDebugger` puts its error highest. Such a
model takes int8/uint8 input and returns float32 probabilities. The selective quantization
is TensorFlow's own (calibrate, then `mlir_quantize` with `denylisted_nodes`, as the
debugger does it); `tflite.float_layers=none` gives the plain full-INT8 model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from wbc_edge.convert.formats import ConvertError, Job
from wbc_edge.convert.source import ConvertContext
from wbc_edge.core.quiet import native_stderr

log = logging.getLogger(__name__)


def convert(job: Job, ctx: ConvertContext) -> dict[str, Any]:
    """Write `ctx.out_dir / job.file`; return the options to record with the artifact."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(ctx.source.saved_model))
    info: dict[str, Any] = {}
    if job.precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    per_tensor = not job.options.get("dense_per_channel", False)
    if job.precision in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor
    if job.precision == "int8":
        images = ctx.calibration.images
        converter.representative_dataset = lambda: ([images[i : i + 1]] for i in range(len(images)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"int8": tf.int8, "uint8": tf.uint8}[job.options["io_dtype"]]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
        info["calibration_images"] = len(images)
    float_layers = job.options.get("float_layers", "none")  # an int8-only option
    if float_layers != "none":
        model, info["float_nodes"] = _int8_with_float_layers(
            converter, float_layers.split(","), per_tensor
        )
    else:
        with native_stderr():  # pages of MLIR/absl notes ("fully_quantize: 0, ...")
            model = converter.convert()
    (ctx.out_dir / job.file).write_bytes(model)
    if job.precision == "int8":
        info.update(_io_quantization(ctx.out_dir / job.file))
    return {**job.options, **info}


def _int8_with_float_layers(
    converter: Any, which: list[str], per_tensor: bool
) -> tuple[bytes, list[str]]:
    """Full INT8 except some ops (`float_nodes`) and the softmax; (model bytes, the float
    op names). The route TensorFlow's QuantizationDebugger takes: calibrate only, then
    quantize with a deny list. Output float32, so no probability is rounded to 1/256.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert

    dtype = converter.inference_input_type
    converter._experimental_calibrate_only = True
    with native_stderr():
        calibrated = converter.convert()
    nodes = float_nodes(calibrated, which)
    with native_stderr():
        model = tfl_convert.mlir_quantize(
            calibrated,
            disable_per_channel=False,
            input_data_type=dtype,
            output_data_type=tf.float32,
            denylisted_nodes=nodes,
            denylisted_ops=["SOFTMAX"],
            disable_per_channel_for_dense_layers=per_tensor,
        )
    return model, nodes


COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def float_nodes(model: bytes, which: list[str]) -> list[str]:
    """Output names of the ops to keep in float, in graph order: 'first' is the first
    convolution or dense op (the one on the pixels), 'last' the last dense op (the class
    scores). Found from the TFLite graph itself, not from layer names the export renames."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(model)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sub = graph.subgraphs[0]
    ops = []
    for op in sub.operators:
        code = graph.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")
        ops.append((kind, sub.tensors[op.outputs[0]].name.decode()))
    compute = [name for kind, name in ops if kind in COMPUTE_OPS]
    dense = [name for kind, name in ops if kind == "FULLY_CONNECTED"]
    picked = {"first": compute[:1], "last": dense[-1:]}
    nodes = [node for w in which for node in picked[w]]
    if not nodes:
        raise ConvertError(f"tflite.float_layers={','.join(which)}: no such op in the graph")
    return list(dict.fromkeys(nodes))


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
